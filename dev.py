#!/usr/bin/env python3
"""Set up omni-bridge in a virtual environment (created or reused) and run it or its tests.

    python3 dev.py run [ARGS]    the console agent on the embedded sandbox (`omni-bridge chat --sandbox ARGS`)
    python3 dev.py test [ARGS]   the whole test suite (`pytest ARGS`), after installing the third-party
                                 peers of tests/interop (scripts/install_peers.py, into build/peers)

Needs only Python 3.11+. The environment lives in `.venv` (or $OMNI_BRIDGE_VENV) and is reinstalled
whenever pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("OMNI_BRIDGE_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".omni-bridge-installed"


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script must run on old Pythons to say so
        sys.exit(f"omni-bridge needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print(f"[dev] creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text(encoding="utf-8").strip() == wanted:
        return
    print("[dev] installing omni-bridge and its test tools (first run, or pyproject.toml changed)", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(wanted, encoding="utf-8")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test"):
        print(__doc__)
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    if command == "run":
        cmd = [str(BIN / "omni-bridge"), "chat", "--sandbox", *rest]
    else:
        # The interop tests' third-party peers (npm packages); each one missing is a skip with its reason.
        subprocess.run([sys.executable, str(ROOT / "scripts" / "install_peers.py")], cwd=ROOT, check=False)
        cmd = [str(BIN / "python"), "-m", "pytest", *rest]
    return subprocess.run(cmd, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
