"""Fixtures of the integration tests: a sandbox of their own (they inject faults), and a connection to it.

The sandbox runs in a thread with its own loop, so its counters can be read while a test's loop
drives the proxy or an adapter; every test starts from zeroed counters and no faults.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from omni_bridge.agent import OmniConnection
from omni_bridge.sandbox import Sandbox, SandboxConfig


@pytest.fixture(scope="package")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(SandboxConfig(job_step_seconds=0.02))
    with box.run_in_thread():
        yield box


@pytest.fixture(autouse=True)
def clean(sandbox: Sandbox) -> Iterator[None]:
    sandbox.stats.reset()
    yield
    sandbox.set_faults(slow_tool_seconds=0.0, slow_tool_name=None, latency_ms=0, error_rate=0.0)


@pytest.fixture
async def omni(sandbox: Sandbox) -> AsyncIterator[OmniConnection]:
    """A connection to the test sandbox, with a pool of its own (so session counts start at zero)."""
    assert sandbox.url is not None
    async with OmniConnection(base_url=sandbox.url, api_key=sandbox.config.org_key) as connection:
        yield connection
