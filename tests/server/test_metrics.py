"""`GET /metrics` over real HTTP: the service on loopback answers questions, and the Prometheus text moves.

The text is read with prometheus_client's own parser. The metrics are process-wide (other tests answer too),
so each test compares two scrapes of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from omni_bridge.testing import error_reply, text_reply, tool_use_reply
from tests.conftest import Served
from tests.server.service_helpers import KEY, REVENUE, data_of, faults, running_service, wait_for_response

MODEL = "claude-metrics-model"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(autouse=True)
def clean(served: Served) -> Iterator[None]:
    faults(served)
    yield
    faults(served)


async def scrape(client: httpx2.AsyncClient) -> Samples:
    answer = await client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over every label set that includes `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= got)


async def ask(client: httpx2.AsyncClient, text: str) -> dict[str, object]:
    created = await client.post("/v1/threads", json={"message": {"text": text}})
    assert created.status_code == 201, created.text
    return await wait_for_response(client, data_of(created)["response_id"])


async def test_answers_errors_latencies_and_the_session_pool_show_in_metrics(served: Served, tmp_path: Path) -> None:
    script = (tool_use_reply(REVENUE), text_reply("West leads."), error_reply(400, "invalid_request_error"))
    async with running_service(served, tmp_path, *script, anthropic_model=MODEL, anthropic_max_retries=0) as svc:
        async with svc.client() as alice, svc.client(None, key=None) as scraper:
            before = await scrape(scraper)  # open by default: no key, no user
            assert (await ask(alice, "What is our revenue by region?"))["status"] == "succeeded"
            assert (await ask(alice, "And by month?"))["status"] == "failed"
            after = await scrape(scraper)
            text = (await scraper.get("/metrics")).text

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    def moved_total(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("omni_bridge_answers_total", engine="claude", outcome="completed") == 1
    assert moved("omni_bridge_answers_total", engine="claude", outcome="errored") == 1
    assert moved("omni_bridge_answer_errors_total", engine="claude", error_type="invalid_request_error") == 1
    assert moved_total("omni_bridge_answer_duration_seconds_count", engine="claude") == 2
    assert value(after, "omni_bridge_runs_in_flight") == 0
    # Messages API latency: two replies and one refusal of this test's model; their tokens.
    assert moved("omni_bridge_llm_request_duration_seconds_count", model=MODEL, outcome="ok") == 2
    assert moved("omni_bridge_llm_request_duration_seconds_count", model=MODEL, outcome="error") == 1
    assert moved("omni_bridge_llm_tokens_total", model=MODEL, kind="output") > 0
    assert moved("omni_bridge_llm_tokens_total", model=MODEL, kind="cache_read") > 0
    # Omni REST latency (resolving alice), by route template; the tool call; the pool read at scrape time.
    assert moved_total("omni_bridge_omni_rest_duration_seconds_count", method="GET", status="200") >= 1
    assert moved_total("omni_bridge_tool_call_duration_seconds_count", tool="getData", outcome="ok") == 1
    assert value(after, "omni_bridge_mcp_sessions_open") >= 1
    assert value(after, "omni_bridge_mcp_calls_total") >= 1
    routes = {dict(labels)["route"] for (name, labels) in after if name.startswith("omni_bridge_omni_rest")}
    assert routes and all("?" not in route for route in routes)
    # No end user, key or Omni user id anywhere in the text.
    for secret in ("alice", KEY, served.org_key, "test-key"):
        assert secret not in text


async def test_runs_in_flight_counts_an_answer_while_it_runs(served: Served, tmp_path: Path) -> None:
    faults(served, slow_tool_seconds=1.0, slow_tool_name="getData")
    script = (tool_use_reply(REVENUE), text_reply("West leads."))
    async with running_service(served, tmp_path, *script) as svc:
        async with svc.client() as alice, svc.client(None, key=None) as scraper:
            created = await alice.post("/v1/threads", json={"message": {"text": "revenue by region"}})
            response_id = data_of(created)["response_id"]
            async with asyncio.timeout(10):  # the slow tool holds the run; its answer is in flight till then
                while True:
                    if value(await scrape(scraper), "omni_bridge_runs_in_flight") >= 1:
                        break
                    await asyncio.sleep(0.02)
            await wait_for_response(alice, response_id)
            assert value(await scrape(scraper), "omni_bridge_runs_in_flight") == 0


async def test_metrics_can_ask_for_a_service_key_or_be_off(served: Served, tmp_path: Path) -> None:
    async with running_service(served, tmp_path / "key", bridge_metrics="key") as svc:
        async with svc.client(None, key=None) as anyone, svc.client(None) as backend:
            refused = await anyone.get("/metrics")
            assert refused.status_code == 401 and refused.json()["error"]["type"] == "unauthorized"
            wrong = await anyone.get("/metrics", headers={"Authorization": "Bearer not-a-key-0123456789"})
            assert wrong.status_code == 401
            assert "omni_bridge_runs_in_flight" in (await backend.get("/metrics")).text  # no X-Bridge-User needed
    async with running_service(served, tmp_path / "off", bridge_metrics="off") as svc:
        async with svc.client() as alice:
            assert (await alice.get("/metrics")).status_code == 404
