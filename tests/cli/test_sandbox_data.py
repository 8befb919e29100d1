"""`omni-bridge sandbox` keeps its AI jobs and conversations in `BRIDGE_DATA_DIR/sandbox` (or `--data-dir`) across
restarts, and in memory only with `--memory`."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2

from omni_bridge.sandbox import embed_user_id
from tests.cli.test_edges import ORG_KEY, WAIT, cli, environment

ECOMMERCE = "6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f"


@contextlib.contextmanager
def sandbox_command(tmp_path: Path, *args: str) -> Iterator[tuple[str, list[str]]]:
    """`omni-bridge sandbox --port 0 …` running; yields its URL and the lines it printed up to the prompt."""
    process = subprocess.Popen(
        cli("sandbox", "--port", "0", "--job-step-seconds", "0.01", *args),
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            line = process.stdout.readline()
            assert line, (lines, process.stderr.read() if process.stderr else "")
            lines.append(line.rstrip("\n"))
        url = next(line.split()[-1] for line in lines if " listening on " in line)
        yield url, lines
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=WAIT)  # waits, and closes both pipes


def finished_job(url: str, **body: str) -> dict[str, str]:
    with httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {ORG_KEY}"}, timeout=WAIT) as http:
        params = {"userId": embed_user_id("alice")}
        created = http.post("/api/v1/ai/jobs", params=params, json={"modelId": ECOMMERCE, "prompt": "total revenue"})
        assert created.status_code == 201, created.text
        job: dict[str, str] = created.json()
        deadline = time.monotonic() + WAIT
        while http.get(f"/api/v1/ai/jobs/{job['jobId']}").json()["state"] != "COMPLETE":
            assert time.monotonic() < deadline
            time.sleep(0.02)
    return job


def state_of(url: str, job_id: str) -> int:
    with httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {ORG_KEY}"}, timeout=WAIT) as http:
        return http.get(f"/api/v1/ai/jobs/{job_id}").status_code


def test_the_sandbox_command_keeps_its_jobs_in_the_data_dir_unless_told_memory(tmp_path: Path) -> None:
    with sandbox_command(tmp_path) as (url, lines):
        job = finished_job(url)
    assert f"  AI jobs kept in   {tmp_path / 'data' / 'sandbox'}" in lines
    with sandbox_command(tmp_path) as (url, _):
        assert state_of(url, job["jobId"]) == 200  # the restarted sandbox knows it

    elsewhere = tmp_path / "elsewhere"
    with sandbox_command(tmp_path, "--data-dir", str(elsewhere)) as (url, _):
        assert state_of(url, job["jobId"]) == 404
        other = finished_job(url)
    assert (elsewhere / "sandbox.db").exists()

    with sandbox_command(tmp_path, "--memory") as (url, lines):
        assert state_of(url, other["jobId"]) == 404
    assert "  AI jobs kept in   memory (forgotten on stop)" in lines
