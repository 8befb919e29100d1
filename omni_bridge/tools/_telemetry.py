"""The spans and latency samples of the tools room: one per Omni REST attempt, one per tool call.

See `omni_bridge._telemetry` for the conventions. A REST span is named after the route, never the URL:
`GET /api/v1/ai/jobs/{id}` rather than the job's own path, so traces group by operation, metrics keep a
bounded set of labels, and no id or query (which holds `userId`) lands in either. An id is a segment that
follows one of Omni's collections (`/jobs/<id>`, `/models/<id>`, ...).

A tool call is an `execute_tool {tool}` span (GenAI conventions) with the rows of its result
(`omni_bridge.tool.rows`, and `omni_bridge.tool.shown_rows` the model saw); an `is_error` result marks it failed
with `error.type` `tool_error`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx2

from omni_bridge._telemetry import REST_SECONDS, TOOL_SECONDS, SpanLike, fail, span

if TYPE_CHECKING:  # the REST client imports this module, and result shaping imports the REST client
    from omni_bridge.tools._shape import ShapedResult

__all__ = ["RestAttempt", "ToolSpan", "rest_attempt", "route_template", "tool_span"]

_COLLECTIONS = frozenset({"models", "conversations", "jobs", "users", "Users", "documents", "topics"})
"""Path segments after which Omni's routes take an id."""
_NOT_IDS = frozenset({"embed"})
"""Fixed words that follow a collection (`/api/v0/users/embed`)."""


def route_template(path: str) -> str:
    """`path` with each id replaced by `{id}`: `/api/v1/ai/jobs/3f2…/result` -> `/api/v1/ai/jobs/{id}/result`."""
    segments = path.split("?", 1)[0].split("/")
    out = []
    for index, segment in enumerate(segments):
        after_collection = index > 0 and segments[index - 1] in _COLLECTIONS
        out.append("{id}" if after_collection and segment and segment not in _NOT_IDS else segment)
    return "/".join(out)


@dataclass
class RestAttempt:
    """What the body tells about the attempt: the status Omni answered."""

    span: SpanLike
    status: int | None = None

    def answered(self, status: int) -> None:
        self.status = status
        self.span.set_attribute("http.response.status_code", status)
        if status >= 400:
            fail(self.span, str(status))


@contextlib.contextmanager
def rest_attempt(method: str, path: str, base_url: str, attempt: int) -> Iterator[RestAttempt]:
    """A CLIENT span `{method} {route}` and a sample of `omni_bridge_omni_rest_duration_seconds` for the body."""
    route = route_template(path)
    url = httpx2.URL(base_url)
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "url.template": route,
        "server.address": url.host,
        "server.port": url.port or (443 if url.scheme == "https" else 80),
    }
    if attempt:
        attributes["http.request.resend_count"] = attempt
    started = time.perf_counter()
    with span(f"{method} {route}", attributes, kind="client") as current:
        call = RestAttempt(current)
        try:
            yield call
        finally:
            status = str(call.status) if call.status is not None else "error"
            REST_SECONDS.labels(method, route, status).observe(time.perf_counter() - started)


@dataclass
class ToolSpan:
    """What the body tells about the call: its result."""

    span: SpanLike
    outcome: str = "error"

    def finished(self, result: ShapedResult) -> None:
        self.outcome = "error" if result.is_error else "ok"
        if result.row_count is not None:
            self.span.set_attribute("omni_bridge.tool.rows", result.row_count)
            self.span.set_attribute("omni_bridge.tool.shown_rows", result.shown_rows)
        if result.is_error:
            fail(self.span, "tool_error")


@contextlib.contextmanager
def tool_span(tool: str, call_id: str | None) -> Iterator[ToolSpan]:
    """An `execute_tool {tool}` span and a sample of `omni_bridge_tool_call_duration_seconds` for the body."""
    attributes: dict[str, str] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool}
    if call_id:
        attributes["gen_ai.tool.call.id"] = call_id
    started = time.perf_counter()
    with span(f"execute_tool {tool}", attributes) as current:
        call = ToolSpan(current)
        try:
            yield call
        finally:
            TOOL_SECONDS.labels(tool, call.outcome).observe(time.perf_counter() - started)
