"""`omni-bridge --version` and `--help` start without the heavy libraries the commands use when they run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from omni_bridge.cli import main
from omni_bridge.integrations import DEFAULT_USER_HEADER

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("mcp", "starlette", "uvicorn", "httpx2", "anthropic", "omni_bridge.sandbox", "pydantic")
"""Packages only a running command needs: the MCP client and servers, HTTP, the LLM SDK, the sandbox, and
pydantic (under the settings, which a command reads when it runs)."""


def imported_modules(*args: str, tmp_path: Path) -> list[str]:
    """Every module `python -X importtime -m omni_bridge.cli ARGS` imports, by name, in import order (no
    settings, an empty stdin, data under `tmp_path`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNI_", "ANTHROPIC_", "BRIDGE_"))}
    env["BRIDGE_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "omni_bridge.cli", *args],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    return [line.rsplit("|", 1)[1].strip() for line in lines[1:]]  # the first line is the header


@pytest.mark.parametrize("option", ["--version", "--help"])
def test_version_and_help_import_none_of_the_heavy_libraries(option: str, tmp_path: Path) -> None:
    modules = imported_modules(option, tmp_path=tmp_path)

    assert "omni_bridge.cli" in modules  # the list is real: the command itself is in it
    heavy = [name for name in modules if name in HEAVY or name.startswith(tuple(f"{h}." for h in HEAVY))]
    assert heavy == []


def test_the_console_reaches_its_prompt_without_the_mcp_sdk_or_the_llm_sdk(tmp_path: Path) -> None:
    # The default console (the embedded sandbox, Omni's own agent) speaks REST until a tool needs MCP; `mcp`
    # and `anthropic` are most of a second to import, which a later start should not wait for.
    modules = imported_modules("chat", "--sandbox", tmp_path=tmp_path)

    assert {"omni_bridge.cli.console.chat", "omni_bridge.sandbox", "prompt_toolkit"} <= set(modules)  # it ran
    assert [name for name in modules if name.split(".")[0] in ("mcp", "mcp_types", "anthropic")] == []


def test_the_proxy_help_names_the_user_header_the_proxy_reads_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["mcp-proxy", "--help"])

    assert f"(default {DEFAULT_USER_HEADER})" in " ".join(capsys.readouterr().out.split())
