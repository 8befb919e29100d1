"""Shared fixtures: a sandbox served from a background thread for the whole session.

The server runs in its own thread and loop: a session-scoped server inside the tests' function-scoped loops
would hang. Tests that change fault knobs or capabilities build their own sandbox.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from omni_bridge.sandbox import MCP_PATH, Sandbox, SandboxConfig, embed_user_id


@dataclass(frozen=True)
class Served:
    sandbox: Sandbox
    url: str

    @property
    def mcp_url(self) -> str:
        return self.url + MCP_PATH

    @property
    def org_key(self) -> str:
        return self.sandbox.config.org_key

    @property
    def personal_token(self) -> str:
        return self.sandbox.config.personal_token


@pytest.fixture(autouse=True)
def _logger_levels() -> Iterator[None]:
    """Restore the levels `omni_bridge.cli.main` sets, so a command run in-process cannot hide later logs."""
    loggers = [logging.getLogger(name) for name in ("omni_bridge", "uvicorn")]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.fixture(autouse=True)
def _data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`BRIDGE_DATA_DIR` in a fresh folder: the embedded sandbox keeps its jobs there, never in the home folder."""
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path_factory.mktemp("bridge-data")))


@pytest.fixture(scope="session")
def served() -> Iterator[Served]:
    sandbox = Sandbox(SandboxConfig(job_step_seconds=0.02))
    with sandbox.run_in_thread() as url:
        yield Served(sandbox, url)


@pytest.fixture
def alice_id() -> str:
    return embed_user_id("alice")


@pytest.fixture
def bob_id() -> str:
    return embed_user_id("bob")
