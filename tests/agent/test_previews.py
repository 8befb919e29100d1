"""Omni's truncated previews through both engines: label rows out, full rows fetched again as the user, or partial.

A large question ("revenue by customer and region": 862 rows for alice, all West) comes back from an AI job as
the sandbox's preview: 300 data rows under `FIRST`, `SAMPLED 100 ROWS FROM MIDDLE` and `LAST`. The `omni` engine
reads the job result itself; the `claude` engine reads it through `askOmni` and `checkStatus` (the scripted fake
Anthropic API polls like a model would). Either way the bridge runs the returned query again
(`POST /api/v1/query/run`) for the same user and keeps the whole table, or, when that fails, says it is partial.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest

from omni_bridge.agent import Bridge, ChartPart, Event, FinalMessage, ProvenancePart, ToolCallFinished
from omni_bridge.config import load_settings
from omni_bridge.sandbox import Sandbox, SandboxConfig, embed_user_id
from omni_bridge.testing import CapturedRequest, FakeAnthropic, Reply, ToolCall, text_reply, tool_use_reply
from omni_bridge.tools import Artifact
from tests.conftest import Served

QUESTION = "revenue by customer and region"
ALICE_ROWS = 862
"""Customers with West orders: alice's whole result (the preview holds 300 of them)."""
LABELS = re.compile(r"^(FIRST|LAST|SAMPLED .* FROM MIDDLE)$")


@pytest.fixture(scope="module")
def big() -> Iterator[Served]:
    """A sandbox of our own: the tests turn its query-run fault on and off."""
    sandbox = Sandbox(SandboxConfig(job_step_seconds=0.02))
    with sandbox.run_in_thread() as url:
        yield Served(sandbox, url)


@pytest.fixture(autouse=True)
def reset(big: Served) -> Iterator[None]:
    big.sandbox.stats.reset()
    yield
    big.sandbox.set_faults(query_run_status=None)


def settings_for(served: Served, engine: str, fake_url: str | None = None) -> Any:
    extra = {"anthropic_api_key": "test-key", "anthropic_base_url": fake_url} if fake_url else {}
    return load_settings(None, omni_base_url=served.url, omni_api_key=served.org_key, bridge_engine=engine, **extra)


def polls_a_job(request: CapturedRequest) -> Reply:
    """A model that asks `askOmni`, then calls `checkStatus` until the job is done, then answers."""
    texts = request.tool_result_texts
    if not texts:
        return tool_use_reply(ToolCall("askOmni", {"prompt": QUESTION}))
    job = re.search(r"Job ([0-9a-f-]{36})", texts[-1])
    if job is not None and ("submitted" in texts[-1] or "Poll again" in texts[-1]):
        return tool_use_reply(ToolCall("checkStatus", {"jobId": job[1]}), delay_seconds=0.01)
    return text_reply("Here is revenue by customer.")


async def ask(bridge: Bridge, user: str) -> list[Event]:
    return [event async for event in bridge.ask(user=user, question=QUESTION)]


def final_of(events: list[Event]) -> FinalMessage:
    assert isinstance(events[-1], FinalMessage), events[-1]
    return events[-1]


def provenance_of(final: FinalMessage) -> ProvenancePart:
    parts = [part for part in final.message.parts if isinstance(part, ProvenancePart)]
    assert len(parts) == 1, final.message.parts
    return parts[0]


async def kept_table(bridge: Bridge, final: FinalMessage, user: str) -> Artifact:
    result_id = provenance_of(final).queries[0].result_id
    assert result_id is not None
    artifact = await bridge.store.artifacts.get(result_id, owner=embed_user_id(user))
    assert artifact is not None
    return artifact


def rows_of(artifact: Artifact) -> list[list[str]]:
    return list(csv.reader(io.StringIO(artifact.csv)))[1:]


@pytest.fixture(params=["omni", "claude"])
async def bridge_for(request: pytest.FixtureRequest, big: Served) -> Any:
    """A bridge on the big sandbox answering with the engine of the test's parameter."""
    engine: str = request.param
    fake = FakeAnthropic(responder=polls_a_job)
    async with fake.serve() as url:
        settings = settings_for(big, engine, url if engine == "claude" else None)
        settings = settings.model_copy(update={"bridge_max_turns": 50})
        async with Bridge(settings) as bridge:
            yield engine, bridge, fake


async def test_the_full_rows_are_fetched_again_for_the_same_user(bridge_for: Any, big: Served) -> None:
    engine, bridge, _ = bridge_for
    events = await ask(bridge, "alice")
    final = final_of(events)

    artifact = await kept_table(bridge, final, "alice")
    rows = rows_of(artifact)
    assert artifact.row_count == len(rows) == ALICE_ROWS  # the whole table, not the 300-row preview
    assert not any(len(row) == 1 and LABELS.match(row[0]) for row in rows)  # no label row became data
    assert {row[1] for row in rows} == {"West"}  # alice's row-level security held on the re-run
    assert artifact.columns == ["Customer", "Region", "Total Revenue"]  # the preview's header, kept
    assert big.sandbox.stats.counts[f"query_run.user.{embed_user_id('alice')}"] == 1
    assert sum(n for name, n in big.sandbox.stats.counts.items() if name.startswith("query_run.user.")) == 1

    query = provenance_of(final).queries[0]
    assert (query.row_count, query.total_row_count, query.rows_cut, query.cut_reason) == (ALICE_ROWS, 862, False, None)
    assert query.access_filters == {"customers.region": "West"}
    assert "partial" not in final.message.text.lower()
    assert not any(isinstance(part, ChartPart) for part in final.message.parts)  # 862 bars: no chart
    if engine == "claude":  # the checkStatus result the model read was the completed table
        finished = [e for e in events if isinstance(e, ToolCallFinished) and e.row_count]
        assert [(e.tool, e.row_count) for e in finished] == [("checkStatus", ALICE_ROWS)]


async def test_a_failed_re_run_leaves_a_table_said_to_be_partial(bridge_for: Any, big: Served) -> None:
    engine, bridge, fake = bridge_for
    big.sandbox.set_faults(query_run_status=500)
    final = final_of(await ask(bridge, "alice"))

    artifact = await kept_table(bridge, final, "alice")
    rows = rows_of(artifact)
    assert artifact.row_count == len(rows) == 300  # the preview's data rows, labels taken out
    assert not any(len(row) == 1 and LABELS.match(row[0]) for row in rows)
    assert all(len(row) == 3 for row in rows) and {row[1] for row in rows} == {"West"}
    query = provenance_of(final).queries[0]
    assert (query.row_count, query.total_row_count, query.cut_reason) == (300, ALICE_ROWS, "preview")
    assert query.rows_cut and "PARTIAL" in query.summary
    # The answer itself says so, whatever the engine wrote: never silent.
    assert "the data behind this answer is partial" in final.message.text
    assert "300 rows of 862" in final.message.text
    assert not any(isinstance(part, ChartPart) for part in final.message.parts)  # no chart of a sample
    assert big.sandbox.stats.counts["rest.run_query_route"] >= 1  # it was tried
    if engine == "claude":  # the model was told what it holds, before it wrote a word
        seen = [text for request in fake.requests for text in request.tool_result_texts]
        assert not any(LABELS.match(line.strip('"')) for text in seen for line in text.splitlines())
        told = [text for text in seen if "PARTIAL TABLE" in text]
        assert told and "the first 100 rows, 100 rows sampled from the middle and the last 100 rows" in told[-1]
        assert "(300 of 862 rows)" in told[-1] and "Do not present these rows as the whole table" in told[-1]
