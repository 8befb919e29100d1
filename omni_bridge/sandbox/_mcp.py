"""The sandbox's MCP server: Omni's tool surface, run as the user named by the request's headers.

Built on the `mcp` SDK's low-level `Server` (constructor handlers) so the sandbox decides tool listing, argument
validation and error shape itself. Omni does not publish its tools' input schemas, so tool inputs mirror Omni's
REST field names (`prompt`, `modelId`, `topicName`, `jobId`, `question`). Results carry a readable text block and
the same data as `structuredContent`. Problems the caller can fix (unknown topic, missing access, a question that
cannot be mapped) come back as `isError` results whose text starts with the HTTP-style status, e.g.
`403 Forbidden: …`, so an agent can read and act on them. `getJobChartPage` (`_chart_page`) answers in the one
error shape Omni documents for a tool: `structuredContent {status, error}`, beside `{status: 200, body}`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema

from omni_bridge.sandbox._answer import Scope, answer_question, resolve_model, resolve_topic, visible_models
from omni_bridge.sandbox._caller import Caller
from omni_bridge.sandbox._capabilities import CAPABILITIES, TOOL_CAPABILITIES
from omni_bridge.sandbox._chart_page import ChartPageError, build_chart_page, chart_page_error, chart_page_result
from omni_bridge.sandbox._docs import DocsIndex
from omni_bridge.sandbox._errors import SandboxHTTPError
from omni_bridge.sandbox._faults import Faults, Stats
from omni_bridge.sandbox._jobs import JobEngine, JobState
from omni_bridge.sandbox._query import SandboxQueryError
from omni_bridge.sandbox._roles import role_allows

__all__ = ["CAPABILITIES", "TOOL_CAPABILITIES", "McpTools"]


CALLER_KEY = "omni_sandbox.caller"
"""Where the HTTP gate leaves the resolved `Caller` in the ASGI scope's `state`."""

_STATUS_TEXT = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict"}


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PickModelArgs(_Args):
    pass


class PickTopicArgs(_Args):
    prompt: str = Field(min_length=1, max_length=2000, description="The question the topic should answer.")
    modelId: str | SkipJsonSchema[None] = Field(None, description="Model UUID; defaults to the pinned model.")


class GetDataArgs(_Args):
    prompt: str = Field(min_length=1, max_length=2000, description="A plain-English data question.")
    modelId: str | SkipJsonSchema[None] = Field(None, description="Model UUID; defaults to the pinned model.")
    topicName: str | SkipJsonSchema[None] = Field(None, description="Topic to query; picked when omitted.")
    limit: int | SkipJsonSchema[None] = Field(None, ge=1, le=50_000, description="Row limit (default 1000).")


class AskOmniArgs(_Args):
    prompt: str = Field(min_length=1, max_length=2000, description="An open-ended analysis question.")
    modelId: str | SkipJsonSchema[None] = Field(None, description="Model UUID; defaults to the pinned model.")
    topicName: str | SkipJsonSchema[None] = Field(None, description="Topic to use; picked when omitted.")
    conversationId: str | SkipJsonSchema[None] = Field(None, description="Continue this conversation.")


class CheckStatusArgs(_Args):
    jobId: str = Field(min_length=1, max_length=64, description="The jobId askOmni returned.")


class GetJobChartPageArgs(_Args):
    jobId: str = Field(min_length=1, max_length=64, description="The jobId of a COMPLETE askOmni job.")
    format: str = Field("html", max_length=32, description='The page format; only "html".')


class SearchOmniDocsArgs(_Args):
    question: str = Field(min_length=1, max_length=2000, description="A how-to question about Omni.")


_DESCRIPTIONS: dict[str, tuple[type[_Args], str]] = {
    "pickModel": (PickModelArgs, "List the models you can query, with their ids. Not needed when a model is pinned."),
    "pickTopic": (PickTopicArgs, "List the topics of a model and pick the one that best fits a question."),
    "getData": (GetDataArgs, "Answer a data question with one query: returns rows as CSV, row count and the query."),
    "askOmni": (AskOmniArgs, "Submit a multi-step analysis to Omni's agent. Returns a jobId; poll with checkStatus."),
    "checkStatus": (CheckStatusArgs, "Poll a job from askOmni: state, progress, and the answer once COMPLETE."),
    "searchOmniDocs": (SearchOmniDocsArgs, "Answer how-to questions from the documentation, with sources."),
    "getJobChartPage": (GetJobChartPageArgs, "The HTML chart page of a COMPLETE askOmni job (call from code)."),
}
_ERROR_SHAPES = {"getJobChartPage": chart_page_error}
"""Tools whose errors have their own documented shape (`structuredContent {status, error}`)."""


class McpTools:
    """Tool listing and dispatch, shared by every MCP session of one sandbox."""

    def __init__(
        self,
        *,
        conn: Any,
        jobs: JobEngine,
        docs: DocsIndex,
        faults: Faults,
        stats: Stats,
        today: date,
        capabilities: frozenset[str],
        omni_agent_enabled: bool,
        caller_of: Callable[[ServerRequestContext[Any, Any]], Caller],
    ) -> None:
        self._conn = conn
        self._jobs = jobs
        self._docs = docs
        self._faults = faults
        self._stats = stats
        self._today = today
        self.capabilities = capabilities
        self.omni_agent_enabled = omni_agent_enabled
        self._caller_of = caller_of
        self._handlers: dict[str, Callable[[Caller, Any, str], Awaitable[types.CallToolResult]]] = {
            "pickModel": self._pick_model,
            "pickTopic": self._pick_topic,
            "getData": self._get_data,
            "askOmni": self._ask_omni,
            "checkStatus": self._check_status,
            "searchOmniDocs": self._search_docs,
            "getJobChartPage": self._chart_page,
        }

    @functools.cached_property
    def _tools(self) -> list[types.Tool]:
        """The listed tools; built once, since neither capabilities nor schemas change while serving."""
        tools = []
        for name in self.enabled_tools():
            args_model, description = _DESCRIPTIONS[name]
            tools.append(types.Tool(name=name, description=description, input_schema=args_model.model_json_schema()))
        return tools

    def enabled_tools(self) -> list[str]:
        return [name for name, caps in TOOL_CAPABILITIES.items() if self.capabilities.intersection(caps)]

    def server(self, middleware: list[Any]) -> Server[Any]:
        server: Server[Any] = Server(
            "omni-sandbox",
            version="0.1.0",
            instructions="Omni Analytics sandbox: e-commerce demo data with row-level security by region.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )
        server.middleware.extend(middleware)
        return server

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        user = self._caller_of(ctx).user  # refuses callers the gate did not admit (e.g. in-process use)
        return types.ListToolsResult(
            tools=[t for t in self._tools if role_allows(user.role, t.name, is_org_admin=user.is_org_admin)]
        )

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        caller = self._caller_of(ctx)
        name = params.name
        self._stats.arguments_received(caller.user.id, name, params.arguments or {})
        if name not in self.enabled_tools():
            return _error(404, f"Unknown tool: {name}")
        error = _ERROR_SHAPES.get(name, _error)
        if not role_allows(caller.user.role, name, is_org_admin=caller.user.is_org_admin):
            return error(403, f"Your role ({caller.user.role}) does not allow {name}")
        args_model, _ = _DESCRIPTIONS[name]
        try:
            args = args_model.model_validate(params.arguments or {})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            return error(400, f"Invalid arguments for {name}: {problems}")
        if not self.omni_agent_enabled and name != "pickModel":
            return error(403, "Feature is not enabled")
        base_url = str(ctx.request.base_url) if ctx.request is not None else "http://sandbox/"
        self._stats.tool_started(caller.user.id, name)
        cancelled = False
        try:
            if self._faults.slow_tool_seconds and self._faults.slow_tool_name in (None, name):
                await asyncio.sleep(self._faults.slow_tool_seconds)
            return await self._handlers[name](caller, args, base_url)
        except asyncio.CancelledError:
            cancelled = True
            raise
        except SandboxHTTPError as exc:
            return error(exc.status, exc.detail)
        except SandboxQueryError as exc:
            return error(exc.status, str(exc))
        finally:
            self._stats.tool_ended(caller.user.id, name, cancelled=cancelled)

    # --- tools ---------------------------------------------------------------------------------------

    async def _pick_model(self, caller: Caller, args: PickModelArgs, base_url: str) -> types.CallToolResult:
        models = [
            {"id": m.id, "name": m.name, "label": m.label, "topics": [t.name for t in m.topics]}
            for m in visible_models(caller.user)
            if caller.scope.model_id in (None, m.id)
        ]
        lines = [f"- {m['label']} ({m['name']}): id {m['id']}, topics: {', '.join(m['topics'])}" for m in models]
        return _ok("Models you can query:\n" + "\n".join(lines), {"models": models})

    async def _pick_topic(self, caller: Caller, args: PickTopicArgs, base_url: str) -> types.CallToolResult:
        scope = _with_model(caller.scope, args.modelId)
        model = resolve_model(scope, args.prompt, caller.user)
        chosen = resolve_topic(model, args.prompt, scope, None)
        topics = [
            {"name": t.name, "label": t.label, "description": t.description}
            for t in model.topics
            if (model.ai_chat_topics is None or t.name in model.ai_chat_topics)
            and caller.scope.topic_name in (None, t.name)
        ]
        text = f"Best topic for the question: {chosen.name} ({chosen.label}) in model {model.name}.\nTopics:\n"
        text += "\n".join(f"- {t['name']}: {t['description']}" for t in topics)
        return _ok(text, {"modelId": model.id, "topicName": chosen.name, "topics": topics})

    async def _get_data(self, caller: Caller, args: GetDataArgs, base_url: str) -> types.CallToolResult:
        answer = answer_question(
            self._conn,
            caller.user,
            args.prompt,
            scope=_with_model(caller.scope, args.modelId),
            base_url=base_url,
            today=self._today,
            topic_name=args.topicName,
            limit=args.limit,
        )
        return _ok(answer.text(), answer.structured())

    async def _ask_omni(self, caller: Caller, args: AskOmniArgs, base_url: str) -> types.CallToolResult:
        scope = _with_model(caller.scope, args.modelId)
        resolve_model(scope, args.prompt, caller.user)  # fail now, as the REST create does, rather than in a FAILED job
        job = self._jobs.create(
            caller.user,
            prompt=args.prompt,
            scope=Scope(scope.model_id, args.topicName or scope.topic_name, scope.query_all_views),
            base_url=base_url,
            conversation_id=args.conversationId,
        )
        body = {
            "jobId": job.id,
            "conversationId": job.conversation_id,
            "state": job.state.value,
            "omniChatUrl": job.chat_url,
        }
        return _ok(f"Job {job.id} submitted ({job.state.value}). Call checkStatus with this jobId.", body)

    async def _check_status(self, caller: Caller, args: CheckStatusArgs, base_url: str) -> types.CallToolResult:
        job = self._jobs.get(args.jobId, caller.user, is_admin_key=False)
        status = job.status()
        if job.state is JobState.COMPLETE and job.result is not None:
            status["result"] = job.result
            action = job.result["actions"][0]["result"]
            text = f"{job.result['message']}\n\n```csv\n{action['csvResult']}```\nOpen in Omni: {job.chat_url}"
        elif job.state is JobState.FAILED and job.error is not None:
            text = f"Job {job.id} FAILED: {job.error['message']}"
        else:
            progress = (job.progress or {}).get("message")
            text = f"Job {job.id} is {job.state.value}" + (f": {progress}" if progress else "") + ". Poll again."
        return _ok(text, status)

    async def _chart_page(self, caller: Caller, args: GetJobChartPageArgs, base_url: str) -> types.CallToolResult:
        if args.format != "html":
            return chart_page_error(400, f'Unsupported format {args.format!r}: only "html"')
        job = self._jobs.get(args.jobId, caller.user, is_admin_key=False)  # the same user rules as checkStatus
        if job.state is not JobState.COMPLETE or job.result is None:
            return chart_page_error(409, f"Job {job.id} is {job.state.value}: a chart page exists once it is COMPLETE")
        try:
            return chart_page_result(build_chart_page(job_id=job.id, prompt=job.prompt, result=job.result))
        except ChartPageError as exc:
            return chart_page_error(exc.status, exc.message)

    async def _search_docs(self, caller: Caller, args: SearchOmniDocsArgs, base_url: str) -> types.CallToolResult:
        found = self._docs.search(args.question, base_url=base_url)
        sources = "\n".join(f"- {s['title']}: {s['url']}" for s in found["sources"])
        return _ok(f"{found['answer']}\n\nSources:\n{sources}", found)


def _with_model(scope: Scope, model_id: str | None) -> Scope:
    if model_id and scope.model_id and model_id != scope.model_id:
        raise SandboxHTTPError(400, f"This session is pinned to model {scope.model_id} (X-MCP-Model-ID)")
    return Scope(model_id or scope.model_id, scope.topic_name, scope.query_all_views)


def _ok(text: str, structured: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=structured)


def _error(status: int, detail: str) -> types.CallToolResult:
    text = f"{status} {_STATUS_TEXT.get(status, 'Error')}: {detail}"
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content={"error": {"status": status, "detail": detail}},
        is_error=True,
    )
