"""Fault knobs: injected errors, latency, slow tools (and cancelling them), and the `sandbox` command."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx2
import pytest

from omni_bridge.sandbox import Faults, Sandbox, embed_user_id
from omni_bridge.tools import mcp_headers
from tests.sandbox.mcp_helpers import mcp_client, refusal, wait_until


@pytest.mark.parametrize("status", [429, 503])
async def test_error_rate_answers_rest_and_mcp_with_the_chosen_status(status: int) -> None:
    sandbox = Sandbox()
    sandbox.set_faults(error_rate=1.0, error_status=status)
    async with sandbox.serve() as url:
        async with httpx2.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {sandbox.config.org_key}"}) as h:
            response = await h.get("/api/v1/models")
        error = await refusal(sandbox.mcp_url(), mcp_headers(sandbox.config.org_key, user_id=None))
        sandbox.set_faults(error_rate=0.0)
        async with httpx2.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {sandbox.config.org_key}"}) as h:
            healthy = await h.get("/api/v1/models")
    assert response.status_code == status and response.json()["status"] == status
    assert ("retry-after" in response.headers) == (status == 429)
    assert error.data["status"] == status
    assert healthy.status_code == 200


async def test_faults_can_be_set_over_http_and_bad_values_are_refused() -> None:
    sandbox = Sandbox()
    async with sandbox.serve() as url:
        async with httpx2.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {sandbox.config.org_key}"}) as h:
            ok = await h.post("/sandbox/faults", json={"latency_ms": 5, "slow_tool_name": "getData"})
            bad = await h.post("/sandbox/faults", json={"error_status": 200})
        async with httpx2.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {sandbox.config.personal_token}"}
        ) as pat:
            forbidden = await pat.post("/sandbox/faults", json={"latency_ms": 1})
    assert ok.status_code == 200 and ok.json()["latency_ms"] == 5 and sandbox.faults.slow_tool_name == "getData"
    assert bad.status_code == 400 and "error_status" in bad.json()["detail"]
    assert forbidden.status_code == 403 and sandbox.faults.latency_ms == 5


async def test_the_sandboxs_control_routes_answer_whatever_the_fault_knobs_say() -> None:
    sandbox = Sandbox()
    async with sandbox.serve() as url:
        async with httpx2.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {sandbox.config.org_key}"}) as h:
            failing = await h.post("/sandbox/faults", json={"error_rate": 1.0})
            refused = await h.get("/api/v1/models")
            stats = await h.get("/sandbox/stats")
            webhooks = await h.get("/sandbox/webhooks")
            dropped = await h.post("/sandbox/drop-sessions")
            reset = await h.post("/sandbox/faults", json={"error_rate": 0.0, "rate_limit_per_minute": 1})
            first = await h.get("/api/v1/models")
            limited = await h.get("/api/v1/models")
            unlimited = await h.post("/sandbox/faults", json={"rate_limit_per_minute": None})
            healthy = await h.get("/api/v1/models")
        async with httpx2.AsyncClient(base_url=url) as anonymous:
            keyless = await anonymous.post("/sandbox/faults", json={"error_rate": 1.0})

    assert failing.status_code == 200 and failing.json()["error_rate"] == 1.0
    assert refused.status_code == 503
    assert [stats.status_code, webhooks.status_code, dropped.status_code] == [200, 200, 200]
    assert reset.status_code == 200 and reset.json()["error_rate"] == 0.0
    assert (first.status_code, limited.status_code) == (200, 429)
    assert unlimited.status_code == 200 and unlimited.json()["rate_limit_per_minute"] is None
    assert healthy.status_code == 200 and healthy.json()["records"]
    assert keyless.status_code == 401 and sandbox.faults.error_rate == 0.0  # still behind the key


async def test_a_cancelled_slow_tool_call_is_seen_as_cancelled_by_the_sandbox() -> None:
    sandbox = Sandbox()
    sandbox.set_faults(slow_tool_seconds=30, slow_tool_name="getData")
    alice = embed_user_id("alice")
    async with sandbox.serve():
        async with mcp_client(sandbox.mcp_url(), mcp_headers(sandbox.config.org_key, user_id=alice)) as client:
            call = asyncio.create_task(client.call_tool("getData", {"prompt": "total revenue"}))
            await wait_until(lambda: sandbox.stats.in_flight)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            await wait_until(lambda: sandbox.stats.cancelled_tool_calls)
            fast = await client.call_tool("pickModel", {})  # the session is still usable
    assert sandbox.stats.cancelled_tool_calls == [(alice, "getData")]
    assert not fast.is_error
    assert sandbox.stats.snapshot()["sessionsOpened"] == {alice: 1}


def test_the_sandbox_command_serves_until_stopped() -> None:
    command = [sys.executable, "-m", "omni_bridge.cli", "sandbox", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Omni sandbox") and "listening on http://127.0.0.1:" in first
        url = first.rsplit(" ", 1)[1].strip()
        health = httpx2.get(f"{url}/health", timeout=10)
        assert health.json()["status"] == "ok"
        models = httpx2.get(f"{url}/api/v1/models", headers={"Authorization": "Bearer omni-sandbox-org-key"})
        process.terminate()
        assert process.wait(timeout=30) is not None
    assert models.status_code == 200


def test_a_refused_fault_change_leaves_every_knob_as_it_was() -> None:
    faults = Faults()
    faults.update(latency_ms=5)
    with pytest.raises(ValueError, match="error_status"):
        faults.update(error_status=404, latency_ms=50)
    assert (faults.error_status, faults.latency_ms) == (503, 5)
    faults.update(error_status=429)  # and the knobs still take good values afterwards
    assert faults.error_status == 429
