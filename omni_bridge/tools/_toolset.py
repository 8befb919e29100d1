"""`Toolset`: the tools one identity may use, as Claude sees them, and the calls Claude makes with them.

A toolset is a view of the session pool for one `SessionKey`: it lists that key's Omni tools (cached per key
by the pool), applies the allow/deny lists and hides the selectors that a pinned model or topic makes
pointless (and, always, the tools the bridge calls only from its own code: `CODE_ONLY_TOOLS`), adds the
bridge's own `read_result`, and runs calls with a deadline. With no topic pinned, `pickTopic` is left to the
bridge's code by default: a `getData` call without a topic gets one picked first, in the same turn (the rules are
in `_auto_pin`). Whatever happens to a call, Claude gets a
`tool_result` it can read: Omni's refusals, timeouts and connection failures come back as `is_error` results
with a sentence saying what to do, never as exceptions out of the agent loop.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omni_bridge.config import Settings
from omni_bridge.exceptions import McpConnectError, McpError, SessionExpired, ToolTimeout
from omni_bridge.tools._artifacts import ArtifactStore
from omni_bridge.tools._auto_pin import TOPIC_PICKER_TOOL, TOPIC_TAKING_TOOLS, picked_topic
from omni_bridge.tools._budget import DEFAULT_BUDGET_TOKENS
from omni_bridge.tools._claude_tools import ClaudeTool, claude_tools
from omni_bridge.tools._identity_args import strip_identity_arguments
from omni_bridge.tools._pool import SessionPool
from omni_bridge.tools._preview import QueryRerun
from omni_bridge.tools._read_result import DEFAULT_READ_LIMIT, READ_RESULT_TOOL, ReadResultError, read_result
from omni_bridge.tools._rest import OmniRestClient
from omni_bridge.tools._rest_query import QueryRows
from omni_bridge.tools._session_key import SessionKey
from omni_bridge.tools._shape import ShapedResult, shape_result
from omni_bridge.tools._telemetry import tool_span
from omni_bridge.types import TopicSelection

__all__ = ["CODE_ONLY_TOOLS", "SELECTOR_TOOLS", "ToolOutcome", "ToolPolicy", "Toolset"]

log = logging.getLogger("omni_bridge.tools")

SELECTOR_TOOLS = {"pickModel": "model_id", "pickTopic": "topic_name"}
"""Omni's selector tools, and the part of the session key that pins what each would select."""

LOCAL_TOOLS = {READ_RESULT_TOOL["name"]}
CODE_ONLY_TOOLS = frozenset({"getJobChartPage"})
"""Omni tools the bridge calls from its own code and never offers a model, whatever the allow list says:
`getJobChartPage` returns a whole HTML page ("if your LLM calls it, the full page goes into the LLM's context")."""


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    """Which Omni tools the model is offered, and how much of a result it sees."""

    allow: frozenset[str] = frozenset()
    """Only these Omni tools (empty: all of them)."""
    deny: frozenset[str] = frozenset()
    """Never these, whatever `allow` says."""
    hide_selectors: bool = True
    """Hide `pickModel` when the model is pinned and `pickTopic` when the topic is: they could only re-select
    what is pinned, and each costs the model a round trip."""
    budget_tokens: int = DEFAULT_BUDGET_TOKENS
    """Tokens of one tool result the model sees; the full result is kept for `read_result`."""
    topic_selection: TopicSelection = "code"
    """Who picks the topic when the key pins none: `code` (the toolset runs `pickTopic` on a `getData` call
    without one), `omni` (`getData` picks) or `model` (`pickTopic` is offered). See `_auto_pin`."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ToolPolicy:
        return cls(
            allow=frozenset(settings.bridge_tools_allow),
            deny=frozenset(settings.bridge_tools_deny),
            hide_selectors=settings.bridge_hide_selectors,
            budget_tokens=settings.bridge_result_budget_tokens,
            topic_selection=settings.bridge_topic_selection,
        )

    def offers(self, name: str, key: SessionKey) -> bool:
        if name in CODE_ONLY_TOOLS or name in self.deny or (self.allow and name not in self.allow):
            return False
        if name == TOPIC_PICKER_TOOL and key.topic_name is None and self.topic_selection != "model":
            return False  # picked from code, or by Omni's getData: not worth an LLM round trip
        pinned_by = SELECTOR_TOOLS.get(name)
        return not (self.hide_selectors and pinned_by is not None and getattr(key, pinned_by))


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What one tool call gave: the shaped result, and how long it took."""

    tool: str
    """The tool's name as Claude called it."""
    result: ShapedResult
    elapsed_ms: float
    structured: dict[str, Any] | None = None
    """Omni's `structuredContent` of the call, as it came (what the bridge's own code reads, e.g. a job's state)."""

    @property
    def is_error(self) -> bool:
        return self.result.is_error

    def tool_result_block(self, tool_use_id: str) -> dict[str, Any]:
        """The `tool_result` content block answering Claude's `tool_use` block `tool_use_id`."""
        return {
            "type": "tool_result",
            "tool_use_id": tool_use_id,
            "content": self.result.content,
            "is_error": self.result.is_error,
        }


def _argument_names(schema: Mapping[str, Any] | None) -> frozenset[str]:
    properties = (schema or {}).get("properties")
    return frozenset(properties) if isinstance(properties, Mapping) else frozenset()


def error_result(message: str) -> ShapedResult:
    """An `is_error` result carrying `message` for the model."""
    return ShapedResult(content=[{"type": "text", "text": message}], is_error=True, summary=message[:160])


class Toolset:
    """The tools of one identity (a `SessionKey`), offered to Claude and called on its behalf.

    ```python
    toolset = Toolset(pool, key, artifacts=MemoryArtifactStore())
    tools = await toolset.definitions()              # for messages.create(tools=...)
    outcome = await toolset.call("getData", {"prompt": "revenue by region"})
    block = outcome.tool_result_block(tool_use.id)   # goes back to Claude
    ```
    """

    def __init__(
        self,
        pool: SessionPool,
        key: SessionKey,
        *,
        artifacts: ArtifactStore,
        policy: ToolPolicy | None = None,
        deadline: float | None = None,
        rest: OmniRestClient | None = None,
    ) -> None:
        self.pool = pool
        self.rest = rest
        """Omni's REST API, to run a previewed result's query again for this identity (`None`: it stays partial)."""
        self.key = key
        self.artifacts = artifacts
        self.policy = policy or ToolPolicy()
        self.deadline = deadline
        """Seconds one call may take (`None`: the pool's `tool_timeout`)."""
        self._names: dict[str, str] = {}  # Claude name -> MCP name, as of the last listing
        self._arguments: dict[str, frozenset[str]] = {}  # MCP name -> the argument names its schema declares
        self._listed: list[Any] | None = None  # the pool's tool list the definitions below were made from
        self._definitions: list[ClaudeTool] = []

    def __repr__(self) -> str:
        return f"<Toolset {self.key!r} offered={len(self._names) + len(LOCAL_TOOLS)}>"

    async def definitions(self) -> list[ClaudeTool]:
        """The Claude tool definitions: Omni's offered tools in Omni's order, then the bridge's own.

        The list is the same, byte for byte, while the key's tool list is, so it caches well. A new list each
        time, of shared definitions: do not change them in place.
        """
        tools = await self.pool.list_tools(self.key)
        if tools is not self._listed:  # converted once per listing the pool hands out, not on every turn
            self._arguments = {tool.name: _argument_names(tool.input_schema) for tool in tools}
            offered = [tool for tool in tools if self.policy.offers(tool.name, self.key)]
            definitions, self._names = claude_tools(offered, reserved=LOCAL_TOOLS)
            self._definitions = [*definitions, dict(READ_RESULT_TOOL)]
            self._listed = tools
        return list(self._definitions)

    async def call(
        self, name: str, arguments: dict[str, Any] | None, *, deadline: float | None = None, call_id: str | None = None
    ) -> ToolOutcome:
        """Run one tool call for this identity; problems come back as `is_error` results.

        Only tools this toolset offers can run: a denied, hidden or made-up name is refused without
        reaching Omni. Arguments that name an identity (`userId`, `X-MCP-User-ID`, ... at any depth, see
        `strip_identity_arguments`) never reach Omni: the session fixes the acting user, and the result tells
        the model what was removed. Cancellation propagates (and reaches Omni through the pool). Each call is
        an `execute_tool` span (`call_id`: the model's `tool_use` id, for the span) and a latency sample.
        """
        with tool_span(name, call_id) as traced:
            outcome = await self._call(name, arguments, deadline)
            traced.finished(outcome.result)
        return outcome

    async def _call(self, name: str, arguments: dict[str, Any] | None, deadline: float | None) -> ToolOutcome:
        started = time.perf_counter()
        structured: dict[str, Any] | None = None
        if not isinstance(arguments, dict):
            result = error_result(f"The arguments of {name} must be a JSON object.")
        elif name in LOCAL_TOOLS:
            result = await self._read_result(arguments)
        else:
            stripped = strip_identity_arguments(arguments)
            result, structured = await self._call_omni(name, stripped.arguments, deadline)
            if stripped.note is not None:
                log.info("tool %s for %r: removed identity arguments %s", name, self.key, ", ".join(stripped.removed))
                note = {"type": "text", "text": stripped.note}
                result = dataclasses.replace(result, content=[*result.content, note])
        elapsed_ms = (time.perf_counter() - started) * 1000
        return ToolOutcome(tool=name, result=result, elapsed_ms=elapsed_ms, structured=structured)

    async def _call_omni(
        self, name: str, arguments: dict[str, Any], deadline: float | None
    ) -> tuple[ShapedResult, dict[str, Any] | None]:
        if not self._names:
            await self.definitions()
        mcp_name = self._names.get(name)
        if mcp_name is None:
            return error_result(f"There is no tool named {name!r} here. Use one of the tools you were given."), None
        deadline = deadline if deadline is not None else self.deadline
        if mcp_name in TOPIC_TAKING_TOOLS and self._picks_topic(mcp_name, arguments):
            arguments = await self._with_topic(mcp_name, arguments, deadline)
        try:
            result = await self.pool.call_tool(self.key, mcp_name, arguments, deadline=deadline)
        except ToolTimeout:
            seconds = deadline if deadline is not None else self.pool.tool_timeout
            return error_result(
                f"{name} did not answer within {seconds:g} s and was cancelled. Ask a narrower question, or try again."
            ), None
        except (McpConnectError, SessionExpired) as exc:
            log.warning("tool %s for %r failed: %s", name, self.key, exc)
            return error_result(
                f"The connection to Omni failed during {name} ({exc.message}); the call may not have run. "
                "Try again once; if it fails again, tell the user Omni is unreachable."
            ), None
        except McpError as exc:
            status = f"{exc.status} " if exc.status else ""
            return error_result(f"Omni refused {name}: {status}{exc.message}"), None
        shaped = await shape_result(
            result,
            tool=mcp_name,
            owner=self.key.user_id,
            budget_tokens=self.policy.budget_tokens,
            artifacts=self.artifacts,
            rerun=self._rerun(),
        )
        return shaped, result.structured_content

    def _picks_topic(self, tool: str, arguments: dict[str, Any]) -> bool:
        """Whether this call gets its topic from `pickTopic` first: `code` selection, no topic pinned or given."""
        return (
            self.policy.topic_selection == "code"
            and self.key.topic_name is None
            and not arguments.get("topicName")
            and TOPIC_PICKER_TOOL in self._arguments
            and TOPIC_PICKER_TOOL not in self.policy.deny  # denied: not even from code
            and "topicName" in self._arguments.get(tool, frozenset())
        )

    async def _with_topic(self, tool: str, arguments: dict[str, Any], deadline: float | None) -> dict[str, Any]:
        """`arguments` with the `topicName` that `pickTopic` picks for them (unchanged when it cannot pick).

        `pickTopic` gets the call's own arguments that its schema declares (`prompt`, `modelId`), so it picks for
        the same question on the same model, on the same session (an Omni that keeps the pick per session has it).
        """
        takes = self._arguments[TOPIC_PICKER_TOOL]
        asked = {name: value for name, value in arguments.items() if name in takes}
        try:
            result = await self.pool.call_tool(self.key, TOPIC_PICKER_TOOL, asked, deadline=deadline)
        except McpError as exc:
            log.info("pickTopic before %s for %r failed (%s): it runs without a topic", tool, self.key, exc)
            return arguments
        topic = picked_topic(result)
        return {**arguments, "topicName": topic} if topic is not None else arguments

    def _rerun(self) -> QueryRerun | None:
        """Runs a query again as this toolset's user (the same row-level security as the result it completes)."""
        rest, user_id = self.rest, self.key.user_id
        if rest is None:
            return None

        async def rerun(query: Mapping[str, Any], header: Sequence[str]) -> QueryRows:
            return await rest.run_query(query, user_id=user_id, header=header)

        return rerun

    async def _read_result(self, arguments: dict[str, Any]) -> ShapedResult:
        try:
            page = await read_result(
                self.artifacts,
                owner=self.key.user_id,
                result_id=arguments.get("result_id", ""),
                offset=arguments.get("offset", 0),
                limit=arguments.get("limit", DEFAULT_READ_LIMIT),
                budget_tokens=self.policy.budget_tokens,
            )
        except ReadResultError as exc:
            return error_result(str(exc))
        summary = f"rows {page.offset:,}-{page.offset + page.count:,} of {page.total_rows:,}"
        return ShapedResult(
            content=[{"type": "text", "text": page.text}],
            is_error=False,
            summary=summary,
            artifact_id=page.result_id,
            row_count=page.total_rows,
            shown_rows=page.count,
        )
