"""What an operator can plug in: OpenTelemetry spans (optional) and Prometheus metrics, for every room.

Spans follow OpenTelemetry's GenAI semantic conventions (status: development): an `invoke_agent omni-bridge`
span per answer (`agent/_telemetry.py`), an `execute_tool {tool}` span per tool call and an HTTP CLIENT span
per Omni REST attempt named `{method} {url.template}` (the route with `{id}` for ids, never the raw URL or the
query; `tools/_telemetry.py`). The SDKs underneath add theirs in the same tree: `anthropic` a GenAI `chat`
span per Messages API request (model, usage, cache reads and writes), `mcp` a span per MCP message.

OpenTelemetry is an optional extra (`omni-bridge[otel]`). Without `opentelemetry-api` every helper here is a
no-op; with the API but no SDK set up, the API's own no-op tracer makes spans cost next to nothing. The bridge
never sets a tracer provider or an exporter: the process embedding it does (`opentelemetry-instrument`, or
`trace.set_tracer_provider(...)` at start).

No attribute carries key material, a token, a raw user id or a question: the end user is `enduser.pseudo.id`,
the first 16 hex digits of the SHA-256 of their external id (`pseudonym`), and an error is its type name,
never its message (messages may quote what a server answered).

Metrics: `prometheus_client` (small, pure Python, the reference client) in its default registry, so a process
that already exposes Prometheus metrics shows these with its own; `omni-bridge serve` exposes them at
`/metrics`. Label values are bounded: engine, outcome, error type, tool, model, HTTP method, route template and
status, never a user, thread or tenant.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncGenerator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from opentelemetry.trace import Span as _OtelSpan
try:
    from opentelemetry import context as _otel_context, trace as _otel_trace

    _OTEL = True
except ImportError:  # the `otel` extra is not installed: spans are no-ops
    _OTEL = False

__all__ = [
    "ANSWERS",
    "ANSWER_ERRORS",
    "ANSWER_SECONDS",
    "LLM_SECONDS",
    "LLM_TOKENS",
    "REST_SECONDS",
    "RUNS_IN_FLIGHT",
    "TOOL_SECONDS",
    "SpanLike",
    "current_span",
    "error_type_of",
    "fail",
    "pseudonym",
    "span",
    "steps_in_span",
    "tracing_available",
]

_T = TypeVar("_T")
AttributeValue = str | bool | int | float | list[str] | list[int]
Kind = Literal["internal", "client"]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_ANSWER_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)

ANSWERS = Counter("omni_bridge_answers", "Answers finished, by engine and outcome.", ["engine", "outcome"])
ANSWER_ERRORS = Counter(
    "omni_bridge_answer_errors", "Answers that ended on an error, by engine and error type.", ["engine", "error_type"]
)
RUNS_IN_FLIGHT = Gauge("omni_bridge_runs_in_flight", "Answers being made in this process now.")
ANSWER_SECONDS = Histogram(
    "omni_bridge_answer_duration_seconds", "Time to a finished answer.", ["engine"], buckets=_ANSWER_BUCKETS
)
REST_SECONDS = Histogram(
    "omni_bridge_omni_rest_duration_seconds",
    "Omni REST requests (each attempt), by method, route template and status ('error': no answer).",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
LLM_SECONDS = Histogram(
    "omni_bridge_llm_request_duration_seconds",
    "Messages API requests (a whole streamed reply), by model and outcome.",
    ["model", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
LLM_TOKENS = Counter(
    "omni_bridge_llm_tokens",
    "Tokens the Messages API reported, by model and kind (input, output, cache_read, cache_creation).",
    ["model", "kind"],
)
TOOL_SECONDS = Histogram(
    "omni_bridge_tool_call_duration_seconds",
    "Tool calls, by tool and outcome.",
    ["tool", "outcome"],
    buckets=_LATENCY_BUCKETS,
)


class SpanLike(Protocol):
    """The part of an OpenTelemetry `Span` the bridge uses (a no-op stand-in without the `otel` extra)."""

    def set_attribute(self, key: str, value: AttributeValue) -> None: ...

    def is_recording(self) -> bool: ...


class _NoSpan:
    def set_attribute(self, key: str, value: AttributeValue) -> None:
        pass

    def is_recording(self) -> bool:
        return False


_NO_SPAN = _NoSpan()


def tracing_available() -> bool:
    """Whether `opentelemetry-api` is installed (whether anything records spans is the process's choice)."""
    return _OTEL


def pseudonym(user_key: str) -> str:
    """The end user as traces show them: 16 hex digits of the SHA-256 of their key, the same in every span."""
    return hashlib.sha256(user_key.encode("utf-8")).hexdigest()[:16]


def _tracer() -> Any:
    from omni_bridge import __version__

    return _otel_trace.get_tracer("omni_bridge", __version__)


def _start(name: str, kind: Kind, attributes: Mapping[str, AttributeValue]) -> _OtelSpan:
    otel_kind = _otel_trace.SpanKind.CLIENT if kind == "client" else _otel_trace.SpanKind.INTERNAL
    started: _OtelSpan = _tracer().start_span(name, kind=otel_kind, attributes=dict(attributes))
    return started


def _failed(started: Any, error_type: str) -> None:
    """Mark a span as failed with `error.type` (the status has no description: messages stay out of traces)."""
    started.set_attribute("error.type", error_type)
    started.set_status(_otel_trace.StatusCode.ERROR)


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, AttributeValue], *, kind: Kind = "internal") -> Iterator[SpanLike]:
    """A span that is the current one for the body (its children nest under it); for plain code, not generators.

    An exception out of the body marks it failed with `error.type` = the exception's type name.
    """
    if not _OTEL:
        yield _NO_SPAN
        return
    started = _start(name, kind, attributes)
    with _otel_trace.use_span(started, end_on_exit=True, record_exception=False, set_status_on_exception=False):
        try:
            yield started
        except BaseException as exc:
            _failed(started, error_type_of(exc))
            raise


def current_span() -> SpanLike:
    """The span current here (a no-op one when there is none, or no OpenTelemetry)."""
    if not _OTEL:
        return _NO_SPAN
    found: SpanLike = _otel_trace.get_current_span()
    return found


def fail(target: SpanLike, error_type: str) -> None:
    """Mark `target` failed with `error.type` although no exception left it (an error answered as a result)."""
    if _OTEL and target is not _NO_SPAN:
        _failed(target, error_type)


async def steps_in_span(
    events: AsyncGenerator[_T, None], name: str, attributes: Mapping[str, AttributeValue]
) -> AsyncGenerator[tuple[SpanLike, _T], None]:
    """`events`, each paired with a span that is current while `events` makes the next one, and only then.

    An async generator shares its consumer's context, so a span made current across its `yield`s would leak
    into the consumer and be detached in the wrong place; here it is attached for each step and detached
    before the step's item goes out. Tasks started by `events` copy the context, so their spans nest too.
    The span ends when `events` does (or is closed); the caller sets its outcome from the items.
    """
    if not _OTEL:
        async with contextlib.aclosing(events) as plain:
            async for item in plain:
                yield _NO_SPAN, item
        return
    started = _start(name, "internal", attributes)
    context = _otel_trace.set_span_in_context(started)
    try:
        while True:
            token = _otel_context.attach(context)
            try:
                item = await anext(events)
            except StopAsyncIteration:
                break
            finally:
                _otel_context.detach(token)
            yield started, item
    except GeneratorExit:  # the consumer stopped reading: not a failure of the span's own
        raise
    except BaseException as exc:
        _failed(started, error_type_of(exc))
        raise
    finally:
        token = _otel_context.attach(context)
        try:
            await events.aclose()
        finally:
            _otel_context.detach(token)
            started.end()


def error_type_of(exc: BaseException) -> str:
    """An error as spans and metrics name it: the bridge's `error_type` (`omni_unavailable`), else the class name."""
    kind = getattr(exc, "error_type", None)
    return kind if isinstance(kind, str) and kind else type(exc).__name__
