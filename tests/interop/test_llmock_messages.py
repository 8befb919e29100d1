"""The claude engine against llmock, a third-party Anthropic Messages API mock with HTTP failures and stream faults.

llmock (PyPI, not ours) runs in-process on loopback and is scripted over its admin API (`POST /_llmock/scenario`);
its journal (`GET /_llmock/requests`) says what the bridge sent. The sandbox answers the tools. What llmock's wire
format and faults do to the `anthropic` SDK is the check on our own fake: where they disagree, llmock is right.

llmock consumes one scripted reply per request, a faulted one included, so a retried turn is scripted once per
attempt (`"times": 2`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from llmock.testing import LLMockServer

from omni_bridge.agent import (
    Bridge,
    ChartPart,
    ErrorEvent,
    Event,
    TextDelta,
    TextPart,
    ToolCallStarted,
    repair_transcript,
)
from omni_bridge.config import load_settings
from tests.agent.test_claude_engine import collect, final_of
from tests.cli.console_helpers import clean_env, run_cli
from tests.conftest import Served

ANSWER = "West leads with 1.2M."
SHOWN = "West "
"""What the user saw of `ANSWER` when its stream broke after 4 chunks (llmock streams word by word)."""
REVENUE = {"name": "getData", "arguments": {"prompt": "revenue by region"}}
IDLE = 1.0
"""The stream idle timeout here: llmock's stall lasts far longer, so a stall is seen as one."""
KINDS = ["disconnect", "truncate", "malformed", "stall"]

# llmock counts every SSE event as a chunk. A text reply: message_start, content_block_start, ping, then one
# content_block_delta per word. A tool-only reply: message_start, content_block_start, then 12-character input
# fragments.
BEFORE_FIRST_EVENT = 0
IN_TEXT = 4  # after "West " was shown
IN_TOOL_INPUT = 3  # after the first fragment of the input


@pytest.fixture(scope="module")
def llmock_server() -> Iterator[LLMockServer]:
    with LLMockServer() as server:
        yield server


@pytest.fixture
def mock_api(llmock_server: LLMockServer, served: Served) -> Iterator[MockApi]:
    served.sandbox.stats.reset()
    api = MockApi(llmock_server)
    api.admin("POST", "/reset")
    yield api
    api.admin("POST", "/reset")


class MockApi:
    """llmock's admin API, and the settings that point the bridge at it."""

    def __init__(self, server: LLMockServer) -> None:
        self.server = server

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        answer = httpx2.request(method, f"{self.server.url}/_llmock{path}", json=body, timeout=10)
        assert answer.status_code < 300, answer.text
        return answer.json()

    def script(self, *behaviors: dict[str, Any]) -> None:
        self.admin("POST", "/scenario", {"behaviors": list(behaviors)})

    def requests(self) -> list[dict[str, Any]]:
        journal: list[dict[str, Any]] = self.admin("GET", "/requests")["requests"]
        return [record for record in journal if record["path"].endswith("/v1/messages")]

    def settings(self, served: Served, **overrides: Any) -> Any:
        values: dict[str, Any] = {
            "omni_base_url": served.url,
            "omni_api_key": served.org_key,
            "anthropic_api_key": "test-key",
            "anthropic_base_url": self.server.base_url("anthropic"),
            "anthropic_stream_idle_seconds": IDLE,
            "bridge_engine": "claude",
        }
        return load_settings(None, **(values | overrides))


def tool_calls(served: Served) -> int:
    """The model's tool calls that ran (not the selectors the bridge calls from its own code: auto-pinning)."""
    return sum(n for (_, tool), n in served.sandbox.stats.tool_calls.items() if tool not in ("pickModel", "pickTopic"))


def errors(events: list[Event]) -> list[tuple[str, bool]]:
    return [(e.error_type, e.retryable) for e in events if isinstance(e, ErrorEvent)]


async def ask(mock_api: MockApi, served: Served, question: str = "revenue by region", **overrides: Any) -> list[Event]:
    async with Bridge(mock_api.settings(served, **overrides)) as bridge:
        events = await collect(bridge.ask(user="alice", question=question, conversation_id="conv_llmock"))
        stored = await bridge.store.get("conv_llmock")
    assert stored is not None and repair_transcript(stored.messages) == stored.messages
    return events


async def test_a_scripted_tool_call_runs_at_the_sandbox_and_its_data_reaches_the_answer(
    mock_api: MockApi, served: Served
) -> None:
    mock_api.script({"type": "reply", "tool_calls": [REVENUE]}, {"type": "reply", "text": "Revenue by region:"})

    events = await ask(mock_api, served)

    final = final_of(events).message
    assert final.outcome == "completed" and final.text == "Revenue by region:"
    [chart] = [part for part in final.parts if isinstance(part, ChartPart)]
    assert [point.x for point in chart.chart.series[0].points] == ["West"]  # alice's rows, from the sandbox
    assert tool_calls(served) == 1
    first, second = mock_api.requests()
    assert first["body"]["tools"] and first["body"]["stream"] is True
    tool_use = second["body"]["messages"][-2]["content"][-1]
    result = second["body"]["messages"][-1]["content"][0]
    assert tool_use["type"] == "tool_use" and tool_use["id"].startswith("toolu")
    assert result["tool_use_id"] == tool_use["id"] and "West" in json.dumps(result["content"])


@pytest.mark.parametrize("status", [429, 529, 500])
async def test_a_failure_once_is_retried_and_the_answer_completes(
    mock_api: MockApi, served: Served, status: int
) -> None:
    mock_api.script({"type": "fail", "status": status, "retry_after": 0.01}, {"type": "reply", "text": ANSWER})

    events = await ask(mock_api, served, "who leads?")

    assert final_of(events).message.outcome == "completed" and final_of(events).message.text == ANSWER
    assert [(r["status"], r["sdk_retry_count"]) for r in mock_api.requests()] == [(status, 0), (200, 1)]


@pytest.mark.parametrize(
    ("status", "error_type"), [(429, "rate_limit_error"), (529, "overloaded_error"), (500, "api_error")]
)
async def test_a_failure_that_stays_ends_errored_and_retryable(
    mock_api: MockApi, served: Served, status: int, error_type: str
) -> None:
    mock_api.script({"type": "fail", "status": status, "retry_after": 0.01, "times": None})

    events = await ask(mock_api, served, "who leads?", anthropic_max_retries=1)

    assert final_of(events).message.outcome == "errored"
    assert errors(events) == [(error_type, True)]
    assert len(mock_api.requests()) == 2


async def test_a_rejected_key_ends_errored_and_not_retryable(mock_api: MockApi, served: Served) -> None:
    mock_api.script({"type": "fail", "status": 401})

    events = await ask(mock_api, served, "who leads?")

    assert final_of(events).message.outcome == "errored"
    assert errors(events) == [("authentication_error", False)]
    assert len(mock_api.requests()) == 1
    assert "test-key" not in json.dumps([e.model_dump(mode="json") for e in events])


def fault(kind: str, after_chunks: int, **more: Any) -> dict[str, Any]:
    return {"type": "stream_fault", "kind": kind, "after_chunks": after_chunks, "stall_seconds": 20, **more}


@pytest.mark.parametrize("kind", KINDS)
async def test_a_stream_fault_before_the_first_event_is_retried_and_the_answer_completes(
    mock_api: MockApi, served: Served, kind: str
) -> None:
    mock_api.script({"type": "reply", "text": ANSWER, "times": 2}, fault(kind, BEFORE_FIRST_EVENT))

    events = await ask(mock_api, served, "who leads?")

    assert final_of(events).message.outcome == "completed" and final_of(events).message.text == ANSWER
    assert errors(events) == []
    assert [r["fault"] for r in mock_api.requests()] == [f"stream:{kind}@0", None]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_stream_fault_inside_a_tool_calls_input_never_runs_it_and_the_turn_is_retried(
    mock_api: MockApi, served: Served, kind: str
) -> None:
    mock_api.script(
        {"type": "reply", "tool_calls": [REVENUE], "times": 2},
        {"type": "reply", "text": "Revenue by region:"},
        fault(kind, IN_TOOL_INPUT),
    )

    events = await ask(mock_api, served)

    assert final_of(events).message.outcome == "completed"
    assert len([e for e in events if isinstance(e, ToolCallStarted)]) == 1
    assert tool_calls(served) == 1  # the retried turn's call; the cut one never ran
    assert [r["fault"] for r in mock_api.requests()] == [f"stream:{kind}@{IN_TOOL_INPUT}", None, None]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_stream_fault_after_text_was_shown_ends_errored_with_the_text_marked_partial(
    mock_api: MockApi, served: Served, kind: str
) -> None:
    mock_api.script({"type": "reply", "text": ANSWER}, fault(kind, IN_TEXT))

    events = await ask(mock_api, served, "who leads?")

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == SHOWN
    final = final_of(events).message
    assert final.outcome == "errored" and final.parts[0] == TextPart(text=SHOWN, partial=True)
    assert errors(events) == [("stream_interrupted", True)]
    assert len(mock_api.requests()) == 1


async def test_a_stream_that_always_breaks_ends_errored_and_retryable_once_the_retries_are_spent(
    mock_api: MockApi, served: Served
) -> None:
    mock_api.script({"type": "reply", "text": ANSWER, "times": None}, fault("disconnect", 0, times=None))

    events = await ask(mock_api, served, "who leads?", anthropic_max_retries=2)

    assert final_of(events).message.outcome == "errored"
    assert errors(events) == [("stream_interrupted", True)]
    assert len(mock_api.requests()) == 3


@pytest.mark.parametrize("kind", ["truncate", "disconnect"])
async def test_ask_json_reports_a_stream_cut_after_its_first_word_as_errored_not_completed(
    mock_api: MockApi, tmp_path: Path, kind: str
) -> None:
    mock_api.script({"type": "reply", "text": ANSWER}, fault(kind, IN_TEXT))
    env = clean_env(tmp_path, ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=mock_api.server.base_url("anthropic"))

    done = await run_cli("ask", "who leads?", "--sandbox", "--json", env=env, cwd=tmp_path)

    assert done.code == 1 and "Traceback" not in done.stderr, done.stderr
    answer = json.loads(done.stdout)
    assert answer["outcome"] == "errored"
    assert answer["parts"][0] == {"type": "text", "text": SHOWN, "partial": True}
    assert [(e["error_type"], e["retryable"]) for e in answer["errors"]] == [("stream_interrupted", True)]
