"""Helpers of the integration tests: reading regions out of results, and launching the stdio proxy."""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from mcp import StdioServerParameters
from mcp.types import CallToolResult

from omni_bridge.sandbox import Sandbox

REGIONS = {"alice": "West", "bob": "East", "carol": "Central"}
"""The region row-level security gives each demo embed user in the sandbox."""

_CSV_FENCE = re.compile(r"```csv\n(.*?)```", re.DOTALL)


def regions_of(result: CallToolResult) -> set[str]:
    """The `Region` column of a getData result (from its structured content)."""
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return {row["Region"] for row in csv.DictReader(io.StringIO(result.structured_content["csv"]))}


def regions_in_text(text: str) -> set[str]:
    """The `Region` column of every CSV block in a model-facing text (what the adapters hand a model)."""
    found: set[str] = set()
    for block in _CSV_FENCE.findall(text):
        found |= {row["Region"] for row in csv.DictReader(io.StringIO(block))}
    assert found, f"no CSV with a Region column in {text[:300]!r}"
    return found


def hermetic_env(**extra: str) -> dict[str, str]:
    """This process's environment without any OMNI_/MCP_/BRIDGE_ setting, plus `extra` (for subprocesses)."""
    prefixes = ("OMNI_", "MCP_", "BRIDGE_", "ANTHROPIC_", "DEBUG")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(extra)
    return env


def stdio_proxy(sandbox: Sandbox, *args: str, cwd: str, **env: str) -> StdioServerParameters:
    """How an MCP client launches `omni-bridge mcp-proxy` over stdio against `sandbox` (OMNI_* settings)."""
    assert sandbox.url is not None
    settings = {"OMNI_BASE_URL": sandbox.url, "OMNI_API_KEY": sandbox.config.org_key}
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "omni_bridge.cli", "mcp-proxy", *args],
        env=hermetic_env(**{**settings, **env}),
        cwd=cwd,
    )


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    """Import `examples/<name>.py` (the examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"omni_bridge_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `examples/<name>.py` as a user would, against its own in-process sandbox."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        env=hermetic_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
