#!/usr/bin/env python3
"""Install the third-party peers the interop tests run against, and write a manifest the tests read.

    python3 scripts/install_peers.py [--force]

The peers are software nobody on this team wrote (see tests/interop/): the TypeScript SDK's
`server-everything`, the MCP Inspector CLI, the MCP conformance suite, and Node 22 for the last two (the npm
package `node@22` ships its binary inside the registry package). Each lives in its own npm folder under
`build/peers/` so versions never clash; a folder whose pinned spec is already installed is left alone, so a
second run costs nothing. `llmock` (the third-party Messages API) is a Python package in the `dev` extra.

The manifest `build/peers/peers.json` names each peer's version and entry point, or why it could not be
installed; the interop tests skip with that reason. Only the standard library is used: `dev.py` runs this
before the venv's pytest, on a machine that may have nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(os.environ.get("OMNI_BRIDGE_PEERS_DIR", ROOT / "build" / "peers"))
MANIFEST = PEERS_DIR / "peers.json"

# name -> (npm spec, entry point inside the folder, whether it needs Node 22)
PEERS: dict[str, tuple[str, str, bool]] = {
    "node22": ("node@22", "node_modules/node/bin/node", False),
    "server-everything": (
        "@modelcontextprotocol/server-everything@2026.8.31",
        "node_modules/@modelcontextprotocol/server-everything/dist/index.js",
        False,
    ),
    "inspector": ("@modelcontextprotocol/inspector@2.12.0", "node_modules/.bin/mcp-inspector", True),
    "conformance": ("@modelcontextprotocol/conformance@0.1.16", "node_modules/.bin/conformance", True),
}
NPM_TIMEOUT = 600.0


def _installed_version(folder: Path, spec: str) -> str | None:
    package = spec.rsplit("@", 1)[0] if spec.count("@") > (1 if spec.startswith("@") else 0) else spec
    meta = folder / "node_modules" / package / "package.json"
    try:
        return str(json.loads(meta.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return None


def install(name: str, *, force: bool) -> dict[str, object]:
    spec, entry, _ = PEERS[name]
    folder = PEERS_DIR / name
    stamp = folder / ".installed-spec"
    target = folder / entry
    if not force and target.exists() and stamp.exists() and stamp.read_text(encoding="utf-8") == spec:
        return {"ok": True, "spec": spec, "path": str(target), "version": _installed_version(folder, spec)}
    npm = shutil.which("npm")
    if npm is None:
        return {"ok": False, "spec": spec, "reason": "npm is not on PATH (install Node.js and npm to run the peers)"}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text('{"private": true}\n', encoding="utf-8")
    print(f"[peers] installing {spec} into {folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder}")
    try:
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", spec],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "spec": spec, "reason": f"npm install {spec} did not finish in {NPM_TIMEOUT:.0f} s"}
    if done.returncode != 0 or not target.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"ok": False, "spec": spec, "reason": f"npm install {spec} failed: {' / '.join(tail)[:400]}"}
    stamp.write_text(spec, encoding="utf-8")
    record: dict[str, object] = {"ok": True, "spec": spec, "path": str(target)}
    record["version"] = _installed_version(folder, spec)
    return record


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="reinstall even when the pinned spec is there")
    args = parser.parse_args(argv)
    manifest: dict[str, dict[str, object]] = {}
    for name in PEERS:
        manifest[name] = install(name, force=args.force)
        manifest[name]["needs_node22"] = PEERS[name][2]
    if not manifest["node22"]["ok"]:
        for record in manifest.values():
            if record.get("needs_node22") and record.get("ok"):
                record.update(ok=False, reason=f"needs Node 22: {manifest['node22']['reason']}")
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    for name, record in manifest.items():
        state = f"{record.get('version')}" if record["ok"] else f"NOT INSTALLED: {record['reason']}"
        print(f"[peers] {name:18} {state}")
    return 0  # a peer that could not be installed is a skip with a reason, never a failed test run


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
