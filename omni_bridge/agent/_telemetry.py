"""The agent room's spans and metrics: an `invoke_agent` span per answer, samples per Messages API request.

Conventions and the no-op rule are in `omni_bridge._telemetry`. The answer span is made by `AnswerTelemetry`
around `Bridge.ask`, so identity resolution, the engine's LLM calls, tool calls and REST calls all nest under
it; it counts the answer (`omni_bridge_answers_total{engine,outcome}`), its error type
(`omni_bridge_answer_errors_total`), and the runs in flight; its `gen_ai.usage.input_tokens` includes cache
reads and writes, as the GenAI conventions count them (Anthropic's own `input_tokens` does not). `llm_call`
samples one Messages API request's latency and tokens; the request's span is the `anthropic` SDK's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from omni_bridge._telemetry import (
    ANSWER_ERRORS,
    ANSWER_SECONDS,
    ANSWERS,
    LLM_SECONDS,
    LLM_TOKENS,
    RUNS_IN_FLIGHT,
    SpanLike,
    current_span,
    error_type_of,
    fail,
    pseudonym,
    steps_in_span,
)
from omni_bridge.agent.events import ErrorEvent, Event, FinalMessage, Usage

__all__ = ["AnswerTelemetry", "LlmCall", "llm_call"]

AGENT_NAME = "omni-bridge"
_PROVIDERS = {"claude": "anthropic", "omni": "omni"}


def _usage_attributes(usage: Usage) -> dict[str, int]:
    cached, created = usage.cache_read_input_tokens, usage.cache_creation_input_tokens
    return {
        "gen_ai.usage.input_tokens": usage.input_tokens + cached + created,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": cached,
        "gen_ai.usage.cache_creation.input_tokens": created,
    }


class AnswerTelemetry:
    """Follows one `Bridge.ask`: its span, and its sample in the answer metrics.

    ```python
    telemetry = AnswerTelemetry(user_key)
    async for event in telemetry.follow(self._ask(..., telemetry=telemetry)):
        yield event
    ```
    """

    def __init__(self, user_key: str, engine: str) -> None:
        self.user = pseudonym(user_key)
        self.engine = engine
        """The engine that answers: the one asked for until `describe` says which the conversation has."""

    def describe(self, *, engine: str, conversation_id: str) -> None:
        """Name the engine and conversation, once known (called from inside the answer, where its span is current)."""
        self.engine = engine
        target = current_span()
        target.set_attribute("gen_ai.provider.name", _PROVIDERS.get(engine, engine))
        target.set_attribute("gen_ai.conversation.id", conversation_id)
        target.set_attribute("omni_bridge.engine", engine)

    async def follow(self, events: AsyncGenerator[Event, None]) -> AsyncGenerator[Event, None]:
        """`events`, inside the answer's span; counts the answer when they end (or are closed)."""
        attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": AGENT_NAME,
            "enduser.pseudo.id": self.user,
        }
        outcome: str = "canceled"
        error_type: str | None = None
        started = time.perf_counter()
        RUNS_IN_FLIGHT.inc()
        try:
            async with contextlib.aclosing(steps_in_span(events, f"invoke_agent {AGENT_NAME}", attributes)) as steps:
                async for span, event in steps:
                    if isinstance(event, ErrorEvent):
                        error_type = event.error_type
                    elif isinstance(event, FinalMessage):
                        outcome = event.message.outcome
                        _describe_final(span, event, error_type)
                    yield event
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:
            outcome, error_type = "errored", error_type_of(exc)
            raise
        finally:
            RUNS_IN_FLIGHT.dec()
            ANSWERS.labels(self.engine, outcome).inc()
            if error_type is not None:
                ANSWER_ERRORS.labels(self.engine, error_type[:64]).inc()
            ANSWER_SECONDS.labels(self.engine).observe(time.perf_counter() - started)


def _describe_final(span: SpanLike, event: FinalMessage, error_type: str | None) -> None:
    message = event.message
    span.set_attribute("omni_bridge.outcome", message.outcome)
    if message.usage is not None:
        for key, value in _usage_attributes(message.usage).items():
            span.set_attribute(key, value)
    if message.outcome == "errored":
        fail(span, error_type or "errored")


@dataclass
class LlmCall:
    """What the body tells about the request: the reply it got."""

    model: str
    outcome: str = "error"

    def finished(self, message: Any) -> None:
        """Count the reply's tokens (an `anthropic.types.Message`); the request counts as `ok`."""
        self.outcome = "ok"
        usage = Usage.from_api(message.usage)
        for kind, count in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_input_tokens),
            ("cache_creation", usage.cache_creation_input_tokens),
        ):
            LLM_TOKENS.labels(self.model, kind).inc(count)


@contextlib.asynccontextmanager
async def llm_call(model: str) -> AsyncIterator[LlmCall]:
    """A sample of `omni_bridge_llm_request_duration_seconds` and the tokens of one Messages API request.

    No span of its own: the `anthropic` SDK makes the GenAI `chat` span of each request itself (model, usage
    with cache reads and writes, stop reason; no content by default), and it nests under the answer's span
    because the request starts while that span is current. A second `chat` span would count the tokens twice.
    """
    started = time.perf_counter()
    call = LlmCall(model)
    try:
        yield call
    finally:
        LLM_SECONDS.labels(model, call.outcome).observe(time.perf_counter() - started)
