"""The sandbox's REST API: the Omni endpoints the bridge uses, with Omni's `{detail, status}` errors.

Every `/api/*` route passes the same admission as MCP (faults, key, rate limit) through `endpoint()`,
which also turns malformed JSON, bad fields and wrong types into 400s that say what is wrong, so no input
reaches a 500. The sandbox's own control routes (`/sandbox/*`) check the key only: no injected fault or
rate limit ever stops a test from reading the counters or turning the faults off.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from omni_bridge._json_body import InvalidJson, load_json
from omni_bridge.sandbox._answer import Scope, resolve_model, resolve_topic
from omni_bridge.sandbox._caller import Caller, caller_from_headers
from omni_bridge.sandbox._directory import SandboxUser
from omni_bridge.sandbox._errors import SandboxHTTPError, error_response
from omni_bridge.sandbox._gate import admit, check_faults
from omni_bridge.sandbox._jobs import JobState
from omni_bridge.sandbox._semantic import MODELS

if TYPE_CHECKING:  # the sandbox imports this module to build its routes
    from omni_bridge.sandbox._app import Sandbox

__all__ = ["rest_routes"]

_M = TypeVar("_M", bound=BaseModel)
Handler = Callable[[Request, Caller], Awaitable[Response]]


# --- request bodies ------------------------------------------------------------------------------------


class _Body(BaseModel):
    # Omni's spec allows extra keys on most bodies; unknown keys are ignored rather than refused.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class CreateJobBody(_Body):
    modelId: uuid.UUID
    prompt: str = Field(min_length=1, max_length=20_000)
    topicName: str | None = Field(None, max_length=256)
    branchId: uuid.UUID | None = None
    conversationId: uuid.UUID | None = None
    webhookUrl: AnyHttpUrl | None = None
    webhookSigningSecret: str | None = Field(None, min_length=1, max_length=512)
    webhookMetadata: dict[str, Any] | None = None
    progressWebhookEnabled: bool = False

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> CreateJobBody:
        if self.webhookUrl is not None and not self.webhookSigningSecret:
            raise ValueError("webhookSigningSecret is required when webhookUrl is set")
        if self.progressWebhookEnabled and self.webhookUrl is None:
            raise ValueError("progressWebhookEnabled needs webhookUrl")
        return self


class GenerateSessionBody(_Body):
    externalId: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1, max_length=255)
    contentPath: str = "/"
    email: str | None = Field(None, max_length=320)
    entity: str | None = Field(None, max_length=64)
    groups: list[str] = Field(default_factory=list, max_length=100)
    userAttributes: dict[str, str | list[str] | int | float | bool | None] = Field(default_factory=dict)


class SearchDocsBody(_Body):
    question: str = Field(min_length=1, max_length=2000)


class PickTopicBody(_Body):
    modelId: uuid.UUID
    prompt: str = Field(min_length=1, max_length=20_000)
    currentTopicName: str | None = None
    userId: uuid.UUID | None = None


class FaultsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    latency_ms: int | None = Field(None, ge=0, le=60_000)
    error_rate: float | None = Field(None, ge=0, le=1)
    error_status: int | None = None
    slow_tool_seconds: float | None = Field(None, ge=0, le=600)
    slow_tool_name: str | None = None
    rate_limit_per_minute: int | None = Field(None, ge=1)
    scim_available: bool | None = None
    scim_ignores_filter: bool | None = None
    seed: int | None = None


def _validation_detail(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"])
        message = "Required" if error["type"] == "missing" else error["msg"]
        parts.append(f"{where}: {message}" if where else message)
    return "Bad Request: " + "; ".join(parts)


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return load_json(raw or b"{}")
    except InvalidJson as exc:
        raise SandboxHTTPError(400, f"Bad Request: {exc}") from None


async def _parse(request: Request, model: type[_M]) -> _M:
    data = await _json(request)
    if not isinstance(data, dict):
        raise SandboxHTTPError(400, "Bad Request: the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SandboxHTTPError(400, _validation_detail(exc)) from None


def _int_param(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SandboxHTTPError(400, f"Bad Request: {name} must be an integer, got {raw[:32]!r}") from None
    return min(max(value, low), high)


def _acting_user(sandbox: Sandbox, request: Request, caller: Caller) -> SandboxUser:
    """`?userId=`: an org key may act for anyone; a personal token only for itself (403)."""
    return sandbox.directory.act_as(caller.key, request.query_params.get("userId") or None)


def _require_org_key(caller: Caller, what: str) -> None:
    if not caller.is_org_key:
        raise SandboxHTTPError(403, f"Forbidden: {what} requires an organization API key")


# --- routes --------------------------------------------------------------------------------------------


def rest_routes(sandbox: Sandbox) -> list[Route]:
    """The REST routes, bound to one sandbox."""

    def endpoint(handler: Handler, *, control: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """`handler` behind the admission of Omni's API: injected faults, the key, the rate limit.

        A control route (`control=True`: the `/sandbox/` routes) checks the key only: the knobs that make the
        API fail must never lock out the route that turns them off, nor the counters a test reads.
        """

        async def run(request: Request) -> Response:
            sandbox.stats.count(f"rest.{handler.__name__}")
            try:
                if control:
                    caller = caller_from_headers(sandbox.directory, request.headers)
                else:
                    failure = await check_faults(sandbox.faults)
                    if failure is not None:
                        raise failure
                    caller = admit(sandbox.directory, sandbox.limiter, sandbox.faults, request.headers)
                return await handler(request, caller)
            except SandboxHTTPError as exc:
                return error_response(exc.status, exc.detail, exc.headers)

        return run

    # SCIM embed users --------------------------------------------------------------------------------

    async def scim_list(request: Request, caller: Caller) -> Response:
        _require_org_key(caller, "SCIM")
        if not sandbox.faults.scim_available:
            raise SandboxHTTPError(404, "Not Found")
        expression = None if sandbox.faults.scim_ignores_filter else request.query_params.get("filter")
        users = sandbox.directory.find_embed(expression)
        start = _int_param(request, "startIndex", 1, low=1, high=1_000_000)
        count = _int_param(request, "count", 100, low=0, high=1000)
        page = users[start - 1 : start - 1 + count]
        return JSONResponse(
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "Resources": [u.scim() for u in page],
                "itemsPerPage": len(page),
                "startIndex": start,
                "totalResults": len(users),
            }
        )

    async def scim_get(request: Request, caller: Caller) -> Response:
        _require_org_key(caller, "SCIM")
        if not sandbox.faults.scim_available:
            raise SandboxHTTPError(404, "Not Found")
        user = sandbox.directory.get(request.path_params["user_id"])
        if user.kind != "embed":
            raise SandboxHTTPError(404, f"User {user.id} not found")
        if request.method == "DELETE":
            sandbox.directory.delete_embed(user.id)
            return Response(status_code=204)
        return JSONResponse(user.scim())

    async def v0_embed_users(request: Request, caller: Caller) -> Response:
        _require_org_key(caller, "listing embed users")
        external_id = request.query_params.get("externalId")
        users = [u for u in sandbox.directory.embed_users() if external_id in (None, u.external_id)]
        page_size = _int_param(request, "pageSize", 100, low=1, high=1000)
        records = [
            {
                "id": u.id,
                "externalId": u.external_id,
                "name": u.name,
                "email": u.email,
                "entity": u.entity,
                "groups": list(u.groups),
                "userAttributes": dict(u.attributes),
            }
            for u in users[:page_size]
        ]
        page_info = {
            "hasNextPage": len(users) > page_size,
            "nextCursor": None,
            "pageSize": page_size,
            "totalRecords": len(users),
        }
        return JSONResponse({"records": records, "pageInfo": page_info})

    async def generate_session(request: Request, caller: Caller) -> Response:
        _require_org_key(caller, "embed SSO")
        body = await _parse(request, GenerateSessionBody)
        attributes = {k: (v if isinstance(v, list) or v is None else str(v)) for k, v in body.userAttributes.items()}
        sandbox.directory.upsert_embed(
            body.externalId,
            body.name,
            groups=body.groups,
            attributes=attributes,
            entity=body.entity,
            email=body.email,
        )
        return JSONResponse({"sessionId": uuid.uuid4().hex})

    # models and topics -----------------------------------------------------------------------------------

    async def list_models(request: Request, caller: Caller) -> Response:
        kind = request.query_params.get("modelKind")
        name = request.query_params.get("name")
        model_id = request.query_params.get("modelId")
        records = [
            {
                "id": m.id,
                "name": m.name,
                "modelKind": "SHARED",
                "connectionId": CONNECTION_ID,
                "baseModelId": None,
                "createdAt": "2024-01-01T00:00:00Z",
                "updatedAt": "2026-10-01T00:00:00Z",
                "deletedAt": None,
            }
            for m in MODELS
            if kind in (None, "SHARED") and name in (None, m.name) and model_id in (None, m.id)
        ]
        page_size = _int_param(request, "pageSize", 20, low=1, high=100)
        page_info = {
            "hasNextPage": len(records) > page_size,
            "nextCursor": None,
            "pageSize": page_size,
            "totalRecords": len(records),
        }
        return JSONResponse({"pageInfo": page_info, "records": records[:page_size]})

    async def list_topics(request: Request, caller: Caller) -> Response:
        model = resolve_model(Scope(model_id=request.path_params["model_id"]))
        topics = [
            {
                "name": t.name,
                "base_view_name": t.base_view,
                "label": t.label,
                "description": t.description,
                "group_label": None,
                "hidden": False,
            }
            for t in model.topics
        ]
        return JSONResponse({"success": True, "topics": topics})

    async def get_topic(request: Request, caller: Caller) -> Response:
        model = resolve_model(Scope(model_id=request.path_params["model_id"]))
        topic = resolve_topic(model, "", Scope(model_id=model.id), request.path_params["topic_name"])
        fields = [
            {"name": f.name, "label": f.label, "description": f.description, "kind": kind}
            for kind, group in (("dimension", topic.dimensions), ("measure", topic.measures))
            for f in group
        ]
        body = {
            "name": topic.name,
            "label": topic.label,
            "description": topic.description,
            "base_view_name": topic.base_view,
            "fields": fields,
            "views": [],
            "relationships": [],
            "sample_questions": list(topic.sample_questions),
        }
        return JSONResponse({"success": True, "topic": body})

    # AI ----------------------------------------------------------------------------------------------------

    async def create_job(request: Request, caller: Caller) -> Response:
        user = _acting_user(sandbox, request, caller)
        body = await _parse(request, CreateJobBody)
        scope = Scope(model_id=str(body.modelId), topic_name=body.topicName)
        model = resolve_model(scope)
        if body.branchId is not None:
            raise SandboxHTTPError(404, f"Branch {body.branchId} not found for model {model.id}")
        if body.topicName is not None:
            resolve_topic(model, body.prompt, scope, body.topicName)
        job = sandbox.jobs.create(
            user,
            prompt=body.prompt,
            scope=scope,
            base_url=str(request.base_url),
            conversation_id=str(body.conversationId) if body.conversationId else None,
            webhook_url=str(body.webhookUrl) if body.webhookUrl else None,
            webhook_secret=body.webhookSigningSecret,
            webhook_metadata=body.webhookMetadata,
            progress_webhook=body.progressWebhookEnabled,
        )
        body_out = {"jobId": job.id, "conversationId": job.conversation_id, "omniChatUrl": job.chat_url}
        return JSONResponse(body_out, status_code=201)

    def _job(request: Request, caller: Caller) -> Any:
        user = _acting_user(sandbox, request, caller)
        scoped = "userId" in request.query_params
        return sandbox.jobs.get(request.path_params["job_id"], user, is_admin_key=caller.is_org_key and not scoped)

    async def job_status(request: Request, caller: Caller) -> Response:
        return JSONResponse(_job(request, caller).status())

    async def job_cancel(request: Request, caller: Caller) -> Response:
        job = _job(request, caller)
        job = sandbox.jobs.cancel(job, _acting_user(sandbox, request, caller))
        return JSONResponse({"jobId": job.id, "state": job.state.value})

    async def job_result(request: Request, caller: Caller) -> Response:
        job = _job(request, caller)
        if job.state is not JobState.COMPLETE or job.result is None:
            raise SandboxHTTPError(404, f"Job {job.id} has no result: it is {job.state.value}")
        return JSONResponse(job.result)

    async def search_docs(request: Request, caller: Caller) -> Response:
        body = await _parse(request, SearchDocsBody)
        return JSONResponse(sandbox.docs.search(body.question, base_url=str(request.base_url)))

    async def pick_topic(request: Request, caller: Caller) -> Response:
        body = await _parse(request, PickTopicBody)
        sandbox.directory.act_as(caller.key, str(body.userId) if body.userId else None)
        model = resolve_model(Scope(model_id=str(body.modelId)))
        return JSONResponse({"topicId": resolve_topic(model, body.prompt, Scope(model.id), None).name})

    # sandbox controls --------------------------------------------------------------------------------------

    async def get_stats(request: Request, caller: Caller) -> Response:
        return JSONResponse(sandbox.stats.snapshot())

    async def set_faults(request: Request, caller: Caller) -> Response:
        _require_org_key(caller, "changing sandbox faults")
        body = await _parse(request, FaultsBody)
        try:
            sandbox.set_faults(**body.model_dump(exclude_unset=True))
        except ValueError as exc:
            raise SandboxHTTPError(400, f"Bad Request: {exc}") from None
        return JSONResponse(sandbox.fault_settings())

    async def drop_sessions(request: Request, caller: Caller) -> Response:
        _require_org_key(caller, "dropping MCP sessions")
        return JSONResponse({"dropped": sandbox.drop_sessions()})

    async def webhooks(request: Request, caller: Caller) -> Response:
        deliveries = [
            {"url": d.url, "event": d.event, "statusCode": d.status_code, "error": d.error}
            for d in sandbox.jobs.webhook_deliveries
        ]
        return JSONResponse({"deliveries": deliveries})

    # public pages (no key) -----------------------------------------------------------------------------

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": "omni-bridge sandbox"})

    async def doc_page(request: Request) -> Response:
        page = sandbox.docs.page(request.path_params["slug"])
        if page is None:
            return PlainTextResponse("Not Found", status_code=404)
        return PlainTextResponse(page.body, media_type="text/markdown; charset=utf-8")

    async def chat_page(request: Request) -> Response:
        return PlainTextResponse(
            "omni-bridge sandbox: in Omni this link opens the conversation in Omni's chat.\n"
            f"Conversation: {request.path_params['conversation_id']}\n"
        )

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/docs/{slug}", doc_page, methods=["GET"]),
        Route("/chat/{conversation_id}", chat_page, methods=["GET"]),
        Route("/api/v0/users/embed", endpoint(v0_embed_users), methods=["GET"]),
        Route("/api/v1/embed/sso/generate-session", endpoint(generate_session), methods=["POST"]),
        Route("/api/unstable/embed/sso/generate-session", endpoint(generate_session), methods=["POST"]),
        Route("/api/v1/models", endpoint(list_models), methods=["GET"]),
        Route("/api/v1/models/{model_id}/topic", endpoint(list_topics), methods=["GET"]),
        Route("/api/v1/models/{model_id}/topic/{topic_name}", endpoint(get_topic), methods=["GET"]),
        Route("/api/v1/ai/jobs", endpoint(create_job), methods=["POST"]),
        Route("/api/v1/ai/jobs/{job_id}", endpoint(job_status), methods=["GET"]),
        Route("/api/v1/ai/jobs/{job_id}/cancel", endpoint(job_cancel), methods=["POST"]),
        Route("/api/v1/ai/jobs/{job_id}/result", endpoint(job_result), methods=["GET"]),
        Route("/api/v1/ai/search-omni-docs", endpoint(search_docs), methods=["POST"]),
        Route("/api/v1/ai/pick-topic", endpoint(pick_topic), methods=["POST"]),
        Route("/sandbox/stats", endpoint(get_stats, control=True), methods=["GET"]),
        Route("/sandbox/faults", endpoint(set_faults, control=True), methods=["POST"]),
        Route("/sandbox/drop-sessions", endpoint(drop_sessions, control=True), methods=["POST"]),
        Route("/sandbox/webhooks", endpoint(webhooks, control=True), methods=["GET"]),
    ]
    # SCIM paths: the docs spell them lower-case, the spec `/Users`; Omni's routes are case-sensitive.
    for users in ("users", "Users"):
        routes.append(Route(f"/api/scim/v2/embed/{users}", endpoint(scim_list), methods=["GET"]))
        routes.append(Route(f"/api/scim/v2/embed/{users}/{{user_id}}", endpoint(scim_get), methods=["GET", "DELETE"]))
    return routes


CONNECTION_ID = "c0ffee00-0000-4000-8000-000000000001"
