"""`python3 dev.py`: `run` installs the package's base dependencies only, `test`/`lint` the dev extra on top.

dev.py runs as a real process on an environment (`OMNI_BRIDGE_VENV`) whose commands are stand-ins that write
down how they were called: its `python` (so pip's install command) and the console or checkers it hands over
to. So the tests see exactly what dev.py would install and run, in a second, without an index or a download.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HASH = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="stand-in commands are POSIX shell scripts")


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """An environment of stand-ins: each command appends its name and arguments to `calls.log`, then succeeds."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name in ("python", "omni-bridge", "ruff", "mypy"):
        script = venv / "bin" / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{tmp_path / "calls.log"}"\n', encoding="utf-8")
        script.chmod(0o755)
    return venv


def dev(venv: Path, *args: str) -> list[str]:
    """Run `python3 dev.py ARGS` on `venv`; the calls its stand-ins saw (exit 0 asserted)."""
    log = venv.parent / "calls.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "OMNI_BRIDGE_VENV": str(venv)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "dev.py"), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def installs(calls: list[str]) -> list[str]:
    return [call for call in calls if call.startswith("python ") and " install " in call]


def stamp(venv: Path) -> str:
    return (venv / ".omni-bridge-installed").read_text(encoding="utf-8")


def test_run_installs_the_package_without_the_dev_extra(venv: Path) -> None:
    calls = dev(venv, "run", "--user", "bob")

    assert installs(calls) == [f"python -m pip --disable-pip-version-check -q install -e {ROOT}"]
    assert calls[-1] == "omni-bridge chat --sandbox --user bob"
    assert stamp(venv) == f"{HASH} run"


def test_test_tools_come_with_lint_and_test_then_run_installs_nothing(venv: Path) -> None:
    dev(venv, "run")

    calls = dev(venv, "lint")  # lint and test set up the same environment; lint runs no peer installer
    assert installs(calls) == [f"python -m pip --disable-pip-version-check -q install -e {ROOT}[dev]"]
    assert [c.split()[0] for c in calls[1:]] == ["ruff", "ruff", "mypy"]
    assert stamp(venv) == f"{HASH} dev"

    assert installs(dev(venv, "run")) == []  # dev holds everything run needs
    assert installs(dev(venv, "lint")) == []


def test_a_changed_pyproject_installs_again_what_the_command_needs(venv: Path) -> None:
    (venv / ".omni-bridge-installed").write_text(f"{'0' * 64} dev", encoding="utf-8")

    assert installs(dev(venv, "run")) == [f"python -m pip --disable-pip-version-check -q install -e {ROOT}"]
    assert stamp(venv) == f"{HASH} run"


def test_a_stamp_from_before_levels_counts_as_the_dev_install(venv: Path) -> None:
    (venv / ".omni-bridge-installed").write_text(HASH, encoding="utf-8")  # what dev.py wrote before: always [dev]

    assert installs(dev(venv, "lint")) == []
    assert installs(dev(venv, "run")) == []
