#!/usr/bin/env python3
"""Set up omni-bridge in a virtual environment (created or reused) and run it or its tests.

    python3 dev.py run [ARGS]    the console agent on the embedded sandbox (`omni-bridge chat --sandbox ARGS`)
    python3 dev.py test [ARGS]   the whole test suite (`pytest ARGS`), after installing the third-party
                                 peers of tests/interop (scripts/install_peers.py, into build/peers)
    python3 dev.py lint          `ruff check .`, `ruff format --check .` and `mypy` (as pyproject.toml
                                 configures them); fails when any of them finds anything

Needs only Python 3.11+. The environment lives in `.venv` (or $OMNI_BRIDGE_VENV), one for every command, and
grows with what a command needs: `run` installs the package alone (its base dependencies: what the console
needs), `test` and `lint` the `dev` extra on top (the test tools, PostgreSQL's driver and the agent frameworks),
so a first `run` stays light and a `run` after `test` installs nothing. The stamp in the environment records
pyproject.toml's hash and which of the two was installed; when pyproject.toml changes, the next command
installs again what it needs. Once the environment is ready, the command takes this process's place, so
Ctrl-C reaches it alone: in the console it stops the answer being written, in pytest it ends the run with
pytest's report.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("OMNI_BRIDGE_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".omni-bridge-installed"


LEVELS = {"run": "", "dev": "[dev]"}
"""What each level installs with `pip install -e ROOT…`: `run` the base dependencies, `dev` the extra too."""


def installed_level(wanted: str) -> str | None:
    """The level the stamp says is installed for pyproject.toml's hash `wanted`; None: nothing, or outdated.

    A stamp is `HASH LEVEL`; one with the hash alone was written before levels existed, when every install was
    the `dev` one.
    """
    try:
        digest, _, level = STAMP.read_text(encoding="utf-8").strip().partition(" ")
    except FileNotFoundError:
        return None
    return (level or "dev") if digest == wanted else None


def ensure_environment(level: str) -> None:
    """Make the environment hold what `level` (`run` or `dev`) needs; `dev` holds all that `run` does."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script must run on old Pythons to say so
        sys.exit(f"omni-bridge needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print(f"[dev] creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if installed_level(wanted) in (level, "dev"):
        return
    what = "omni-bridge" if level == "run" else "omni-bridge and its test tools"
    print(f"[dev] installing {what} (first run, or pyproject.toml changed)", flush=True)
    # The pip the environment was made with (ensurepip's: 22.3 or later on 3.11) installs an editable package from
    # pyproject.toml alone (PEP 660), so it is not upgraded first: that was a download on every first run.
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "-e", f"{ROOT}{LEVELS[level]}"], check=True)
    STAMP.write_text(f"{wanted} {level}", encoding="utf-8")


def hand_over(cmd: list[str]) -> int:
    """Run `cmd` in the root as this process's successor, so that it alone gets the terminal's signals.

    Ctrl-C sends SIGINT to the terminal's whole foreground process group: with a child running, this script
    would die of it (a KeyboardInterrupt traceback) while the console only meant to stop one answer. On
    POSIX the command replaces this process; elsewhere (Windows) the child runs while this process shrugs
    Ctrl-C off and returns the child's exit code.
    """
    os.chdir(ROOT)
    if os.name == "posix":
        sys.stdout.flush()
        os.execv(cmd[0], cmd)  # does not return
    # A handler that does nothing, not SIG_IGN: an ignored SIGINT would be inherited by the child.
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    return subprocess.run(cmd).returncode


def lint() -> int:
    """Run every checker in the root (all of them, so one run shows every finding); 1 if any failed, else 0."""
    failed = []
    for check in (["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]):
        print(f"[dev] {' '.join(check)}", flush=True)
        if subprocess.run([str(BIN / check[0]), *check[1:]], cwd=ROOT).returncode != 0:
            failed.append(" ".join(check))
    if failed:
        print(f"[dev] lint failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test", "lint"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    try:
        ensure_environment("run" if command == "run" else "dev")
        if command == "run":
            cmd = [str(BIN / "omni-bridge"), "chat", "--sandbox", *rest]
        elif command == "lint":
            return lint()
        else:
            # The interop tests' third-party peers (npm packages); each one missing is a skip with its reason.
            subprocess.run([sys.executable, str(ROOT / "scripts" / "install_peers.py")], cwd=ROOT, check=False)
            cmd = [str(BIN / "python"), "-m", "pytest", *rest]
    except KeyboardInterrupt:  # Ctrl-C while installing: stop quietly, with the shell's code for it
        print(file=sys.stderr)
        return 130
    return hand_over(cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
