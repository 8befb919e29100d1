"""The Omni-compatible AI Jobs API (`/api/v1/ai/jobs…`) served by the bridge.

An integration written for Omni's REST path (its AI Jobs API) works against the bridge by changing only its base
URL and key (a bridge service key): the same requests, fields, states, `{detail, status}` errors and signed
webhooks, as `_jobs_models` spells them. Behind that face a job is a response of the service (`origin="job"`)
on a thread that is the job's conversation, run by the service's runner with whichever engine the bridge
uses, so the thread API, the event stream and the web page see jobs too.

The end user is named as Omni names it, `?userId=<Omni user id>` (looked up to the embed user's external id,
cached, which must lie in the key's namespace: another tenant's user is not found, see `_tenants`), or with the
bridge's own `X-Bridge-User: <the backend's id for its user>`. Creating a job needs one, known to Omni before
anything is stored. Status, result and
cancel also work by job id alone, as an Omni organization key reads any job of its organization: the service
key reads any job of its tenant. Jobs of another tenant, or of another user than the one named, are not found
(404). `modelId` must be a shared model Omni lists (asked once, kept a while), as at Omni.

`branchId` and `attachments` go on to Omni with the job when Omni's own agent answers (the `omni` engine); the
`claude` engine works on the model and reads no attachments. `webhookMetadata` comes back in every webhook. A job
Omni denies (over its AI credit limit) ends FAILED with `error.code` `JOB_DENIED` and the `job.denied` webhook
with its `reason`; a cancelled job sends no webhook, as at Omni.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_bridge._json_body import InvalidJson, load_json
from omni_bridge.agent import EndUser
from omni_bridge.agent.engines import JobOptions
from omni_bridge.agent.events import TextPart
from omni_bridge.exceptions import ErrorType, IdentityError, OmniError, OmniHTTPError
from omni_bridge.server._auth import USER_HEADER, user_from_request
from omni_bridge.server._conversations_api import conversation_routes
from omni_bridge.server._envelope import ApiError, OmniErrorBody
from omni_bridge.server._jobs_models import (
    FACTS_KEY,
    JOB_STATES,
    MAX_JOB_BODY_BYTES,
    CreateJobBody,
    JobCancelled,
    JobCreated,
    JobFacts,
    JobResult,
    JobStatus,
    build_result,
    build_status,
    organization_id,
    parse_events,
    progress_of,
    result_ids,
    step_count,
    validation_detail,
)
from omni_bridge.server._openapi import ApiRoute, Operation, Param
from omni_bridge.server._tenants import acting_user
from omni_bridge.server._webhook_sender import JobWebhooks, WebhookSender, WebhookUrlError, WebhookUrlPolicy
from omni_bridge.stores import MessageRecord, Owner, ResponseRecord, ThreadRecord, WebhookTarget

if TYPE_CHECKING:
    from omni_bridge.server._service import Service

__all__ = ["JobsApi", "jobs_routes"]

log = logging.getLogger("omni_bridge.server.jobs")

_UNAUTHORIZED = "Unauthorized: Missing or invalid API key"


_KINDS: dict[int, ErrorType] = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large",
}


def _error(status: int, detail: str) -> ApiError:
    """An error the app answers in Omni's shape under `/api/`: `{"detail": detail, "status": status}`."""
    return ApiError(status, _KINDS.get(status, "omni_unavailable" if status == 502 else "error"), detail)


class _ForeignUser(Exception):
    """The Omni user a request names belongs to another tenant's namespace: for this key, no such user."""

    def __init__(self, user_id: str) -> None:
        super().__init__(user_id)
        self.user_id = user_id


_NO_ONE: tuple[Owner, str | None] = (Owner(tenant="", user=""), None)
"""What `_job` names when the request named another tenant's user: an owner of no job."""


class _Models:
    """The ids of the shared models Omni lists for the service's key: asked when first needed, kept for `ttl`.

    An id missing from the list asks again (at most every `recheck` seconds), so a model added in Omni is
    found soon without every unknown id costing a request.
    """

    def __init__(self, service: Service, *, ttl: float, recheck: float = 5.0) -> None:
        self._service = service
        self._ttl = ttl
        self._recheck = recheck
        self._ids: frozenset[str] = frozenset()
        self._asked_at: float | None = None
        self._lock = asyncio.Lock()

    def _stale(self, model_id: str, now: float) -> bool:
        if self._asked_at is None or now - self._asked_at >= self._ttl:
            return True
        return model_id not in self._ids and now - self._asked_at >= self._recheck

    async def exists(self, model_id: str) -> bool:
        """Whether Omni lists `model_id` (a lowercase UUID) as a shared model, not deleted."""
        if self._stale(model_id, time.monotonic()):
            async with self._lock:
                if self._stale(model_id, time.monotonic()):  # unless another request asked meanwhile
                    models = await self._service.bridge.rest.list_models(model_kind="SHARED")
                    shared = [m for m in models if (m.model_kind or "").upper() == "SHARED" and m.deleted_at is None]
                    self._ids = frozenset(m.id.lower() for m in shared)
                    self._asked_at = time.monotonic()
        return model_id in self._ids


class JobsApi:
    """The AI Jobs routes of one service, and the webhooks of the jobs they start.

    Args:
        service: the running service (settings, store, bridge, runner).
        sender: how webhooks are sent (default: checked against `BRIDGE_WEBHOOK_ALLOW`, 5 s timeout).
    """

    def __init__(self, service: Service, *, sender: WebhookSender | None = None) -> None:
        self.service = service
        settings = service.settings
        self.sender = sender or WebhookSender(WebhookUrlPolicy.from_settings(settings))
        self.webhooks = JobWebhooks(service.store, self.sender)
        self.webhooks.attach(service.runner)
        self._models = _Models(service, ttl=max(settings.bridge_identity_ttl_seconds, 1.0))

    def __repr__(self) -> str:
        return f"<JobsApi webhooks={self.webhooks!r}>"

    @property
    def routes(self) -> list[Route]:
        """The four job routes and the two conversation routes, each described for the OpenAPI document."""
        return [
            ApiRoute(_operation("POST", "", "aiJobSubmit", "Create an AI job", JobCreated, 201), self.create_job),
            ApiRoute(
                _operation("GET", "/{job_id}", "aiJobStatus", "Get an AI job's status", JobStatus), self.job_status
            ),
            ApiRoute(
                _operation("GET", "/{job_id}/result", "aiJobResult", "Get an AI job's result", JobResult),
                self.job_result,
            ),
            ApiRoute(
                _operation("POST", "/{job_id}/cancel", "aiJobCancel", "Cancel an AI job", JobCancelled), self.cancel_job
            ),
            *conversation_routes(self),
        ]

    # --- who is asking -------------------------------------------------------------------------------------

    def _tenant(self, request: Request) -> str:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        tenant = self.service.keys.tenant_of(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if tenant is None:
            raise _error(401, _UNAUTHORIZED)
        return tenant

    async def _named(self, request: Request, tenant: str) -> tuple[Owner, str | None] | None:
        """The end user the request names (owner, Omni user id if named by it), or `None` if it names none."""
        header = user_from_request(request) if request.headers.get(USER_HEADER, "").strip() else None
        user_id = request.query_params.get("userId", "").strip() or None
        if user_id is None:
            return None if header is None else (Owner(tenant=tenant, user=header), None)
        try:
            user_id = str(uuid.UUID(user_id))
        except ValueError:
            raise _error(400, f"Bad Request: userId must be a UUID, got {user_id[:64]!r}") from None
        try:
            external = await self.service.bridge.connection.external_id_for(user_id)
        except OmniHTTPError as exc:
            log.warning("looking up an Omni user by id failed: HTTP %d", exc.status)
            raise _error(502, "Omni refused the lookup of the user") from None
        except OmniError:
            raise _error(502, "Omni could not be reached to look up the user") from None
        if external is None:
            raise _error(404, f"User {user_id} not found")
        user = self.service.tenants.user_of(tenant, external)
        if user is None:
            raise _ForeignUser(user_id)  # another tenant's end user: not one this key may act for
        if header is not None and header != user:
            raise _error(400, f"Bad Request: userId and {USER_HEADER} name different users")
        return Owner(tenant=tenant, user=user), user_id

    async def reader(self, request: Request) -> tuple[str, Owner | None]:
        """(tenant, the end user the request names, or `None` for the whole tenant); another tenant's is a 404."""
        tenant = self._tenant(request)
        try:
            named = await self._named(request, tenant)
        except _ForeignUser as foreign:
            raise _error(404, f"User {foreign.user_id} not found") from None
        return tenant, named[0] if named is not None else None

    async def _owner(self, request: Request) -> tuple[str, Owner, str | None]:
        """(tenant, owner, Omni user id if the request named one) of a request that must name its end user."""
        tenant = self._tenant(request)
        try:
            named = await self._named(request, tenant)
        except _ForeignUser as foreign:
            raise _error(404, f"User {foreign.user_id} not found") from None
        if named is None:
            raise _error(400, f"Bad Request: name the end user with ?userId=<Omni user id> or the {USER_HEADER} header")
        return tenant, *named

    def _end_user(self, owner: Owner) -> EndUser:
        """The end user at Omni of the tenant's `owner` (its namespaced external id)."""
        try:
            return acting_user(self.service.tenants, owner)
        except ApiError as exc:
            raise _error(exc.status, f"Bad Request: {exc.message}") from None

    async def _omni_user_id(self, owner: Owner, user: EndUser) -> str:
        try:
            identity = await self.service.bridge.resolve(user)
        except IdentityError:
            raise _error(404, f"User not found: Omni has no embed user with external id {owner.user!r}") from None
        except OmniError:
            raise _error(502, "Omni could not be reached to look up the user") from None
        return identity.user_id

    async def _job(self, request: Request) -> tuple[str, Owner, ResponseRecord, JobFacts]:
        """The job the path names: the named user's, or, when no user is named, any of the tenant's."""
        tenant = self._tenant(request)
        try:
            named = await self._named(request, tenant)
        except _ForeignUser:
            named = _NO_ONE  # another tenant's user owns no job of this tenant
        job_id = request.path_params["job_id"]
        try:
            uuid.UUID(job_id)
        except ValueError:
            raise _error(400, f"Bad Request: jobId must be a UUID, got {job_id[:64]!r}") from None
        store = self.service.store
        owner = named[0] if named is not None else await store.response_owner(tenant, job_id)
        record = await store.get_response(owner, job_id) if owner is not None and named is not _NO_ONE else None
        thread = await store.get_thread(record.owner, record.thread_id) if record is not None else None
        facts = JobFacts.of(thread) if thread is not None else None
        if record is None or record.origin != "job" or facts is None:
            raise _error(404, f"Job {job_id} not found")
        return tenant, record.owner, record, facts

    # --- the routes ----------------------------------------------------------------------------------------

    async def create_job(self, request: Request) -> Response:
        """`POST /api/v1/ai/jobs`: start a job in a new or continued conversation; 201 `{jobId, …}`."""
        tenant, owner, user_id = await self._owner(request)
        body = await _parse(request)
        self.service.check_accepting()
        await self._check_model(str(body.modelId))
        webhook = None
        if body.webhookUrl is not None:
            assert body.webhookSigningSecret is not None  # the body's validator requires it
            try:
                await self.sender.policy.check(str(body.webhookUrl))
            except WebhookUrlError as exc:
                raise _error(400, f"Bad Request: {exc}") from None
            webhook = WebhookTarget(
                url=str(body.webhookUrl),
                secret=body.webhookSigningSecret,
                metadata=body.webhookMetadata,
                progress=body.progressWebhookEnabled,
            )
        store = self.service.store
        engine = self.service.engine_for(None)
        end_user = self._end_user(owner)
        if user_id is None:  # named by its external id: Omni must know the user before anything is stored
            user_id = await self._omni_user_id(owner, end_user)
        conversation_id = str(body.conversationId or uuid.uuid4())
        thread = await store.get_thread(owner, conversation_id) if body.conversationId else None
        facts = JobFacts.of(thread) if thread is not None else None
        if thread is not None and facts is None:  # a thread the thread API made: not a job conversation
            raise _error(404, f"Conversation {conversation_id} not found")
        message = MessageRecord(thread_id=conversation_id, owner=owner, role="user", parts=[TextPart(text=body.prompt)])
        job = self.service.runner.leased(  # run here at once: stored leased, no claim before the engine starts
            ResponseRecord(
                thread_id=conversation_id,
                owner=owner,
                user_message_id=message.id,
                prompt=body.prompt,
                origin="job",
                webhook=webhook,
            )
        )
        message = message.model_copy(update={"response_id": job.id})
        created: ThreadRecord | None = None
        if facts is None:
            facts = JobFacts(
                user_id=user_id,
                model_id=str(body.modelId),
                topic_name=body.topicName,
                branch_id=str(body.branchId) if body.branchId else None,
                chat_url=_chat_url(request, conversation_id),
            )
            created = ThreadRecord(
                id=conversation_id,
                owner=owner,
                title=body.prompt.splitlines()[0][:80],
                engine=engine,
                metadata={FACTS_KEY: facts.model_dump(mode="json")},
            )
        async with self.service.admission.admit(owner):  # 429 beyond the caps, before anything is stored
            if created is not None:
                accepted = await self._create(created, message, job)
            else:
                accepted = await store.create_job(None, message, job)
        if not accepted:
            raise _error(409, "An active job already exists for this conversation")
        options = JobOptions(
            branch_id=facts.branch_id if body.branchId is None else str(body.branchId),
            attachments=tuple(a.body() for a in body.attachments),
        )
        self.service.runner.start(job, user=end_user, engine=engine, job_options=options)
        log.debug("job %s started for tenant %s", job.id, tenant)
        created_body = JobCreated(jobId=job.id, conversationId=conversation_id, omniChatUrl=facts.chat_url)
        return JSONResponse(created_body.body(), status_code=201)

    async def _check_model(self, model_id: str) -> None:
        """404 as at Omni unless the model is the pinned one (`OMNI_MODEL_ID`), or else one Omni lists."""
        pinned = self.service.settings.omni_model_id
        try:
            known = model_id == pinned if pinned is not None else await self._models.exists(model_id)
        except OmniHTTPError as exc:
            log.warning("listing Omni's models failed: HTTP %d", exc.status)
            raise _error(502, "Omni refused the listing of its models") from None
        except OmniError:
            raise _error(502, "Omni could not be reached to list its models") from None
        if not known:
            raise _error(404, f"Model {model_id} not found")

    async def _create(self, thread: ThreadRecord, message: MessageRecord, job: ResponseRecord) -> bool:
        """Create the conversation with its first job; if its id was taken meanwhile, continue it if it is ours."""
        store = self.service.store
        try:
            return await store.create_job(thread, message, job)
        except ValueError:  # a thread with this id exists: another owner's (404), or ours created a moment ago
            if await store.get_thread(thread.owner, thread.id) is None:
                raise _error(404, f"Conversation {thread.id} not found") from None
            return await store.create_job(None, message, job)

    async def job_status(self, request: Request) -> Response:
        """`GET /api/v1/ai/jobs/{jobId}`: the job's state and what goes with it."""
        tenant, owner, record, facts = await self._job(request)
        steps = 0
        if record.status == "running":
            steps = step_count(parse_events(await self.service.store.events_after(owner, record.id, 0) or []))
        status = build_status(record, facts, organization=organization_id(tenant), progress=progress_of(record, steps))
        return JSONResponse(status.body())

    async def job_result(self, request: Request) -> Response:
        """`GET /api/v1/ai/jobs/{jobId}/result`: the answer and its queries (CSV), once `COMPLETE`."""
        _, owner, record, facts = await self._job(request)
        if record.status != "succeeded":
            raise _error(404, f"Job {record.id} has no result: it is {JOB_STATES[record.status]}")
        events = parse_events(await self.service.store.events_after(owner, record.id, 0) or [])
        artifacts = {}
        store = self.service.bridge.store.artifacts
        for result_id in result_ids(record, events):
            artifact = await store.get(result_id, owner=facts.user_id)
            if artifact is not None:
                artifacts[result_id] = artifact
        return JSONResponse(build_result(record, facts, events, artifacts).body())

    async def cancel_job(self, request: Request) -> Response:
        """`POST /api/v1/ai/jobs/{jobId}/cancel`: queued ends at once, running stops soon; terminal stays as is."""
        _, owner, record, facts = await self._job(request)
        cancelled = await self.service.store.request_cancel(owner, record.id, by=facts.user_id)
        if cancelled is None:
            raise _error(404, f"Job {record.id} not found")
        if record.status == "queued" and cancelled.status == "canceled":
            # Ended here, before any runner claimed it: no run will report its end, so this request does.
            self.service.runner.notify_finished(cancelled)
        return JSONResponse(JobCancelled(jobId=cancelled.id, state=JOB_STATES[cancelled.status]).body())


_USER_PARAMS = (
    Param(
        "userId",
        "query",
        {"type": "string", "format": "uuid"},
        "The Omni user to act for (Omni's way). Needed to create a job; on a job's routes optional (without one,"
        " any job of the key's tenant; with one, only that user's).",
    ),
    Param(
        USER_HEADER, "header", {"type": "string"}, "Or: the end user's external id (the bridge's way).", example="alice"
    ),
)
_JOB_ID = Param(
    "job_id", "path", {"type": "string", "format": "uuid"}, "The job's id (`jobId`).",
    example="9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
)  # fmt: skip


def _operation(
    method: str, suffix: str, operation_id: str, summary: str, answer: type[BaseModel], status: int = 200
) -> Operation:
    create = suffix == ""
    return Operation(
        method=method,
        path="/api/v1/ai/jobs" + suffix,
        operation_id=operation_id,
        summary=summary,
        tag="AI jobs (Omni-compatible)",
        description="Answers as Omni's AI Jobs API does: same fields, states and errors.",
        params=_USER_PARAMS if create else (_JOB_ID, *_USER_PARAMS),
        body=CreateJobBody if create else None,
        status=status,
        data=answer,
        errors=(404, 409, 429, 502) if create else (404, 502),
        envelope=False,
        error_body=OmniErrorBody,
    )


def jobs_routes(service: Service) -> list[Route]:
    """The AI Jobs routes of `service`; call once per service (it attaches the webhooks to the runner)."""
    return JobsApi(service).routes


async def _parse(request: Request) -> CreateJobBody:
    """The create-job body, or a 400/413 in Omni's words (the body is read in chunks, at most the limit)."""
    too_large = _error(413, f"Request body too large: at most {MAX_JOB_BODY_BYTES} bytes")
    declared = request.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_JOB_BODY_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_JOB_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        data: Any = load_json(raw or b"{}")
    except InvalidJson as exc:
        raise _error(400, f"Bad Request: {exc}") from None
    if not isinstance(data, dict):
        raise _error(400, "Bad Request: the body must be a JSON object")
    try:
        return CreateJobBody.model_validate(data)
    except ValidationError as exc:
        raise _error(400, validation_detail(exc)) from None


def _chat_url(request: Request, conversation_id: str) -> str:
    """`omniChatUrl`: the bridge's chat page opened on the conversation."""
    return f"{str(request.base_url).rstrip('/')}/?thread={conversation_id}"
