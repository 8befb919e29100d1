"""`omni-bridge serve` as a user runs it: a real process, its printed address and key, Ctrl-C to stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

SERVE = [sys.executable, "-m", "omni_bridge.cli", "serve"]


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNI_", "ANTHROPIC_", "BRIDGE_"))}
    return env | {"BRIDGE_DATA_DIR": str(tmp_path / "data")} | extra


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    process = subprocess.Popen(
        [*SERVE, "--sandbox", "--port", "0", "--worker-id", "cli-worker"],
        cwd=tmp_path,
        env=_environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []
        assert process.stdout is not None
        for line in process.stdout:  # ends when the process exits, so a failed start cannot hang the test
            lines.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                break
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def test_serve_prints_where_it_listens_and_the_development_key_and_stops_on_ctrl_c(
    serving: tuple[subprocess.Popen[str], list[str]],
) -> None:
    process, lines = serving
    first = lines[0]
    assert first.startswith("omni-bridge ") and "(worker cli-worker)" in first, lines
    url = first.split("listening on ")[1].split(" ")[0]
    key = next(line.split()[2] for line in lines if line.strip().startswith("development key"))
    assert any(line.strip().startswith("store") and "SQLite" in line for line in lines)
    assert any("the embedded sandbox" in line for line in lines)

    with httpx2.Client(base_url=url) as client:
        assert client.get("/health").json()["data"]["status"] == "ok"
        assert key in client.get("/").text
        threads = client.get("/v1/threads", headers={"Authorization": f"Bearer {key}", "X-Bridge-User": "alice"})
        assert threads.status_code == 200 and threads.json()["data"] == []

    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert key not in stderr  # the logs carry the hint, never the key


def test_serve_refuses_to_listen_beyond_loopback_on_a_real_omni_without_keys(tmp_path: Path) -> None:
    env = _environment(tmp_path, OMNI_BASE_URL="https://acme.omniapp.co", OMNI_API_KEY="k")
    done = subprocess.run(
        [*SERVE, "--host", "0.0.0.0", "--port", "0"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "BRIDGE_SERVICE_KEYS" in done.stderr and done.stdout == ""
