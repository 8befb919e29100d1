"""The sandbox's AI routes: AI Jobs (create, status, cancel, result), the docs search and the topic picker.

A job is read with `?userId=` as that user; an organization key without `userId` reads any job, as an admin
(Omni's own integration guide polls status and result by job id alone).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from omni_bridge.sandbox._answer import Scope, resolve_model, resolve_topic
from omni_bridge.sandbox._caller import Caller
from omni_bridge.sandbox._errors import SandboxHTTPError
from omni_bridge.sandbox._job_rules import demo_branch_id
from omni_bridge.sandbox._jobs import Job, JobState
from omni_bridge.sandbox._rest_input import CreateJobBody, PickTopicBody, SearchDocsBody, acting_user, parse_body

if TYPE_CHECKING:
    from omni_bridge.sandbox._app import Sandbox

__all__ = ["create_job", "job_cancel", "job_result", "job_status", "pick_topic", "search_docs"]


async def create_job(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    user = acting_user(sandbox, request, caller)
    body = await parse_body(request, CreateJobBody)
    scope = Scope(model_id=str(body.modelId), topic_name=body.topicName)
    model = resolve_model(scope)
    if body.branchId is not None and str(body.branchId) != demo_branch_id(model.id):
        raise SandboxHTTPError(404, f"Branch {body.branchId} not found for model {model.id}")
    if body.topicName is not None:
        resolve_topic(model, body.prompt, scope, body.topicName)
    job = sandbox.jobs.create(
        user,
        prompt=body.prompt,
        scope=scope,
        base_url=str(request.base_url),
        conversation_id=str(body.conversationId) if body.conversationId else None,
        branch_id=str(body.branchId) if body.branchId else None,
        attachments=[a.summary(i) for i, a in enumerate(body.attachments)],
        webhook_url=str(body.webhookUrl) if body.webhookUrl else None,
        webhook_secret=body.webhookSigningSecret,
        webhook_metadata=body.webhookMetadata,
        progress_webhook=body.progressWebhookEnabled,
    )
    body_out = {"jobId": job.id, "conversationId": job.conversation_id, "omniChatUrl": job.chat_url}
    return JSONResponse(body_out, status_code=201)


async def job_status(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    return JSONResponse(_job(sandbox, request, caller).status())


async def job_cancel(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    job = _job(sandbox, request, caller)
    job = sandbox.jobs.cancel(job, acting_user(sandbox, request, caller))
    return JSONResponse({"jobId": job.id, "state": job.state.value})


async def job_result(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    job = _job(sandbox, request, caller)
    if job.state is not JobState.COMPLETE or job.result is None:
        raise SandboxHTTPError(404, f"Job {job.id} has no result: it is {job.state.value}")
    return JSONResponse(job.result)


async def search_docs(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    body = await parse_body(request, SearchDocsBody)
    return JSONResponse(sandbox.docs.search(body.question, base_url=str(request.base_url)))


async def pick_topic(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    body = await parse_body(request, PickTopicBody)
    sandbox.directory.act_as(caller.key, str(body.userId) if body.userId else None)
    model = resolve_model(Scope(model_id=str(body.modelId)))
    return JSONResponse({"topicId": resolve_topic(model, body.prompt, Scope(model.id), None).name})


def _job(sandbox: Sandbox, request: Request, caller: Caller) -> Job:
    user = acting_user(sandbox, request, caller)
    scoped = "userId" in request.query_params
    return sandbox.jobs.get(request.path_params["job_id"], user, is_admin_key=caller.is_org_key and not scoped)
