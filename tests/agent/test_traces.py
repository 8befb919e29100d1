"""OpenTelemetry spans of real answers: the sandbox for Omni, the scripted fake for the Messages API.

The SDK's `InMemorySpanExporter` collects what a `Bridge` records; the tests read the span tree (answer ->
LLM calls, tool calls, Omni REST calls), the GenAI attribute names and values, the hashed end user, and scan
every attribute of every span for keys, tokens and raw user ids.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from omni_bridge.agent import Bridge, Event, FinalMessage, ToolCallFinished, ToolCallStarted
from omni_bridge.config import load_settings
from omni_bridge.sandbox import embed_user_id
from omni_bridge.testing import FakeAnthropic, ToolCall, error_reply, tool_then_answer
from tests.conftest import Served

REVENUE = ToolCall("getData", {"prompt": "revenue by region"})
MODEL = "claude-test-model"
_EXPORTER = InMemorySpanExporter()


class _WhileRecording(SimpleSpanProcessor):
    """Exports only during a test that asks for `spans`: the provider stays for the process, the spans do not."""

    recording = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.recording:
            super().on_end(span)


_PROCESSOR = _WhileRecording(_EXPORTER)


def _install_exporter() -> None:
    """One SDK provider for the process (OpenTelemetry allows setting it once), exporting to `_EXPORTER`."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if not getattr(provider, "_omni_bridge_test_exporter", False):
        provider.add_span_processor(_PROCESSOR)
        provider._omni_bridge_test_exporter = True  # type: ignore[attr-defined]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _install_exporter()
    _EXPORTER.clear()
    _PROCESSOR.recording = True
    yield _EXPORTER
    _PROCESSOR.recording = False
    _EXPORTER.clear()


def settings_for(served: Served, fake_url: str | None, **overrides: Any) -> Any:
    values: dict[str, Any] = {"omni_base_url": served.url, "omni_api_key": served.org_key, "bridge_engine": "omni"}
    if fake_url is not None:
        values |= {
            "anthropic_api_key": "test-anthropic-key-for-traces",
            "anthropic_base_url": fake_url,
            "anthropic_model": MODEL,
            "bridge_engine": "claude",
        }
    return load_settings(None, **(values | overrides))


def ours(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """The spans omni-bridge made (not those of the SDKs it uses)."""
    return [
        s
        for s in exporter.get_finished_spans()
        if s.instrumentation_scope is not None and s.instrumentation_scope.name == "omni_bridge"
    ]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def descends_from(span: ReadableSpan, ancestor: ReadableSpan, every: list[ReadableSpan]) -> bool:
    by_id = {s.context.span_id: s for s in every}
    parent = span.parent
    while parent is not None:
        if parent.span_id == ancestor.context.span_id:
            return True
        found = by_id.get(parent.span_id)
        parent = found.parent if found is not None else None
    return False


def every_attribute_value(exporter: InMemorySpanExporter) -> list[str]:
    """Every attribute value (span and event attributes, span names and status texts) of every span recorded."""
    values: list[str] = []
    for s in exporter.get_finished_spans():
        values.append(s.name)
        values.append(s.status.description or "")
        for attributes in [s.attributes or {}, s.resource.attributes, *(e.attributes or {} for e in s.events)]:
            values.extend(json.dumps(v) if not isinstance(v, str) else v for v in attributes.values())
            values.extend(attributes.keys())
    return values


def pseudonym(external_id: str) -> str:
    return hashlib.sha256(external_id.encode()).hexdigest()[:16]


async def collect(bridge: Bridge, **ask: Any) -> list[Event]:
    return [event async for event in bridge.ask(**ask)]


@pytest.mark.parametrize("auth", ["org_key", "embed_token"])
async def test_a_claude_answer_is_a_span_tree_of_llm_tool_and_rest_calls(
    served: Served, spans: InMemorySpanExporter, auth: str
) -> None:
    fake = FakeAnthropic(responder=tool_then_answer(REVENUE, answer="Revenue: {results}"))
    strategy = {} if auth == "org_key" else {"omni_auth": auth, "omni_embed_secret": served.sandbox.config.embed_secret}
    async with fake.serve() as url, Bridge(settings_for(served, url, **strategy)) as bridge:
        events = await collect(bridge, user="alice", question="What is our revenue by region?")
    final = events[-1]
    assert isinstance(final, FinalMessage) and final.message.outcome == "completed"
    recorded = ours(spans)

    answer = one(recorded, "invoke_agent omni-bridge")
    assert answer.parent is None and answer.kind is SpanKind.INTERNAL
    assert attrs(answer)["gen_ai.operation.name"] == "invoke_agent"
    assert attrs(answer)["gen_ai.agent.name"] == "omni-bridge"
    assert attrs(answer)["gen_ai.provider.name"] == "anthropic"
    assert attrs(answer)["gen_ai.conversation.id"] == final.conversation_id
    assert attrs(answer)["enduser.pseudo.id"] == pseudonym("alice")
    assert attrs(answer)["omni_bridge.outcome"] == "completed"

    # One GenAI `chat` span per Messages API request (the anthropic SDK's own), under the answer, each with the
    # usage the fake reported for it; none of ours, so the tokens are not counted twice.
    assert not [s for s in recorded if attrs(s).get("gen_ai.operation.name") == "chat"]
    chats = sorted(
        (s for s in spans.get_finished_spans() if attrs(s).get("gen_ai.operation.name") == "chat"),
        key=lambda s: s.start_time or 0,
    )
    assert len(chats) == len(fake.requests) == 2
    for chat, request in zip(chats, fake.requests, strict=True):
        assert chat.kind is SpanKind.CLIENT and chat.parent is not None
        assert chat.parent.span_id == answer.context.span_id
        attributes = attrs(chat)
        usage = request.usage
        assert usage is not None
        assert attributes["gen_ai.provider.name"] == "anthropic"
        assert attributes["gen_ai.request.model"] == MODEL
        assert attributes["gen_ai.usage.output_tokens"] == usage.output_tokens
        assert attributes["gen_ai.usage.cache_read.input_tokens"] == usage.cache_read_input_tokens
        assert attributes["gen_ai.usage.input_tokens"] == (
            usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
        )
    # The second request reads the prompt cache the first one wrote.
    assert attrs(chats[1])["gen_ai.usage.cache_read.input_tokens"] > 0
    # The answer span carries the answer's total usage, cache reads and writes counted in the input (GenAI).
    total = final.message.usage
    assert total is not None and total.cache_read_input_tokens > 0
    assert attrs(answer)["gen_ai.usage.output_tokens"] == total.output_tokens
    assert attrs(answer)["gen_ai.usage.cache_read.input_tokens"] == total.cache_read_input_tokens
    assert attrs(answer)["gen_ai.usage.cache_creation.input_tokens"] == total.cache_creation_input_tokens
    assert attrs(answer)["gen_ai.usage.input_tokens"] == sum(
        (r.usage.input_tokens + r.usage.cache_read_input_tokens + r.usage.cache_creation_input_tokens)
        for r in fake.requests
        if r.usage is not None
    )

    # The tool call: its span under the answer, named after the tool, with the model's call id and the rows.
    started = next(e for e in events if isinstance(e, ToolCallStarted))
    finished = next(e for e in events if isinstance(e, ToolCallFinished))
    tool = one(recorded, "execute_tool getData")
    assert tool.parent is not None and tool.parent.span_id == answer.context.span_id
    assert attrs(tool)["gen_ai.operation.name"] == "execute_tool"
    assert attrs(tool)["gen_ai.tool.name"] == "getData"
    assert attrs(tool)["gen_ai.tool.call.id"] == started.call_id
    assert finished.row_count is not None and finished.row_count > 0
    assert attrs(tool)["omni_bridge.tool.rows"] == finished.row_count
    assert tool.status.status_code is not StatusCode.ERROR

    # Omni REST calls (resolving alice) are CLIENT spans in the answer's trace, named by route template.
    rest = [s for s in recorded if attrs(s).get("http.request.method")]
    assert rest, [s.name for s in recorded]
    for call in rest:
        assert call.kind is SpanKind.CLIENT
        assert descends_from(call, answer, recorded)
        attributes = attrs(call)
        assert call.name == f"{attributes['http.request.method']} {attributes['url.template']}"
        assert isinstance(attributes["http.response.status_code"], int)
        assert "?" not in str(attributes["url.template"])

    # Nothing secret or identifying in any attribute of any span, ours or the SDKs'.
    values = every_attribute_value(spans)
    forbidden = [served.org_key, "test-anthropic-key-for-traces", embed_user_id("alice"), "Bearer", "eyJ"]
    if auth == "embed_token":
        forbidden.append(served.sandbox.config.embed_secret)
    leaks = [(secret, value) for value in values for secret in forbidden if secret in value]
    assert leaks == []
    assert not [value for value in values if value == "alice"]


async def test_an_llm_failure_marks_the_answer_span_with_the_apis_error_type(
    served: Served, spans: InMemorySpanExporter
) -> None:
    fake = FakeAnthropic(error_reply(400, "invalid_request_error"))
    async with fake.serve() as url, Bridge(settings_for(served, url, anthropic_max_retries=0)) as bridge:
        events = await collect(bridge, user="bob", question="revenue?")
    final = events[-1]
    assert isinstance(final, FinalMessage) and final.message.outcome == "errored"
    recorded = ours(spans)
    answer = one(recorded, "invoke_agent omni-bridge")
    assert answer.status.status_code is StatusCode.ERROR
    assert attrs(answer)["error.type"] == "invalid_request_error"
    assert attrs(answer)["enduser.pseudo.id"] == pseudonym("bob")
    assert not answer.status.description  # the status carries no message (it might quote a server)


async def test_an_omni_engine_answer_traces_its_ai_job_calls_by_route(
    served: Served, spans: InMemorySpanExporter
) -> None:
    async with Bridge(settings_for(served, None)) as bridge:
        events = await collect(bridge, user="carol", question="revenue by region")
    final = events[-1]
    assert isinstance(final, FinalMessage) and final.message.outcome == "completed"
    recorded = ours(spans)
    answer = one(recorded, "invoke_agent omni-bridge")
    assert attrs(answer)["gen_ai.provider.name"] == "omni"
    assert attrs(answer)["omni_bridge.engine"] == "omni"
    assert attrs(answer)["enduser.pseudo.id"] == pseudonym("carol")
    rest = [s for s in recorded if attrs(s).get("http.request.method")]
    names = {s.name for s in rest}
    assert "POST /api/v1/ai/jobs" in names
    assert "GET /api/v1/ai/jobs/{id}" in names or "GET /api/v1/ai/jobs/{id}/result" in names
    for call in rest:
        assert descends_from(call, answer, recorded)
        assert attrs(call)["server.address"] == "127.0.0.1"
    job_calls = [s for s in rest if "/ai/jobs/" in s.name]
    assert job_calls and all("{id}" in s.name for s in job_calls)
    values = every_attribute_value(spans)
    assert not [v for v in values if served.org_key in v or embed_user_id("carol") in v or v == "carol"]


def test_telemetry_is_a_no_op_without_opentelemetry(tmp_path: Path) -> None:
    """With `opentelemetry` unimportable, the span helpers still run their bodies (and the metrics still count).

    (Only the root module here: the anthropic and mcp SDKs import opentelemetry-api themselves.)
    """
    script = """
import asyncio, sys
sys.modules["opentelemetry"] = None  # as if the package were not installed
from omni_bridge import _telemetry as t
assert not t.tracing_available()
with t.span("x", {"a": 1}, kind="client") as s:
    s.set_attribute("b", 2)
    t.fail(s, "boom")
    t.current_span().set_attribute("c", 3)

async def events():
    yield 1
    yield 2

async def main():
    return [item async for _, item in t.steps_in_span(events(), "z", {})]

assert asyncio.run(main()) == [1, 2]
t.ANSWERS.labels("omni", "completed").inc()
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
