"""AI Jobs, as Omni documents them (`/api/v1/ai/jobs`): submit, poll, fetch the result, cancel, webhooks.

A job walks QUEUED → EXECUTING (with `progress`) → DELIVERING → COMPLETE, or ends FAILED or CANCELLED.
Each step waits `step_seconds`, so clients see every state when they poll. One active job per
conversation (a second gets 409). Terminal webhooks are signed like Omni's:
`X-Omni-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">` with `X-Omni-Signature-Timestamp`.

Guesses where Omni is silent (also listed in the sandbox docs): a FAILED payload carries `error`, progress
payloads carry `progress`; every terminal payload names its `event` (`job.complete`, `job.failed`,
`job.denied`); the digest is hex; terminal webhooks are tried 3 times, progress ones once; a conversation id
the server never issued is 404. Omni documents no webhook for a cancelled job, so none is sent
(`webhook_on_cancel=True` sends one, a sandbox-only knob). A job over the AI credit limit is accepted, then
denied (`_job_rules`). Jobs and conversations are kept in a `JobStore` (a file that survives restarts, given a
data directory).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import httpx2

from omni_bridge.sandbox._answer import Answer, Scope, answer_question
from omni_bridge.sandbox._directory import SandboxUser
from omni_bridge.sandbox._errors import SandboxHTTPError
from omni_bridge.sandbox._job_rules import DENIED_CODE, CreditLimit, attachment_failures, question_of
from omni_bridge.sandbox._job_store import ConversationRecord, JobStore
from omni_bridge.sandbox._preview import job_preview
from omni_bridge.sandbox._query import SandboxQueryError

__all__ = ["Job", "JobEngine", "JobState", "sign_webhook"]

logger = logging.getLogger(__name__)


class JobState(StrEnum):
    QUEUED = "QUEUED"
    EXECUTING = "EXECUTING"
    DELIVERING = "DELIVERING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (JobState.COMPLETE, JobState.FAILED, JobState.CANCELLED)


def _iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts if ts is not None else time.time(), UTC).isoformat(timespec="milliseconds")


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `"<timestamp>.<body>"`, Omni's webhook signature."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@dataclass
class Job:
    """One AI job. `webhook_secret` never appears in `repr` or in any answer."""

    id: str
    conversation_id: str
    user_id: str
    model_id: str | None
    topic_name: str | None
    prompt: str
    branch_id: str | None
    chat_url: str
    base_url: str
    scope: Scope
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_metadata: dict[str, Any] | None = None
    progress_webhook: bool = False
    state: JobState = JobState.QUEUED
    created_at: str = field(default_factory=_iso)
    updated_at: str = field(default_factory=_iso)
    execution_started_at: str | None = None
    completed_at: str | None = None
    cancelled_at: str | None = None
    cancelled_by: str | None = None
    progress: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    cancel_requested_by: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    """Name, type and size of each attachment (the bytes are not kept)."""
    denied_reason: str | None = None

    def record(self) -> dict[str, Any]:
        """What the store keeps: every field but the webhook secret (a restarted job sends no webhook)."""
        body = {k: v for k, v in self.__dict__.items() if k not in ("webhook_secret", "scope", "state")}
        scope = self.scope
        body |= {"state": self.state.value, "scope": [scope.model_id, scope.topic_name, scope.query_all_views]}
        return body

    @classmethod
    def from_record(cls, body: dict[str, Any]) -> Job:
        model_id, topic_name, query_all_views = body.pop("scope")
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in body.items() if k in known}
        values["state"] = JobState(values["state"])
        return cls(scope=Scope(model_id, topic_name, bool(query_all_views)), **values)

    def status(self) -> dict[str, Any]:
        """The `GET /api/v1/ai/jobs/{jobId}` body: always-present fields plus the ones of this state."""
        body: dict[str, Any] = {
            "id": self.id,
            "state": self.state.value,
            "prompt": self.prompt,
            "conversationId": self.conversation_id,
            "modelId": self.model_id,
            "branchId": self.branch_id,
            "organizationId": ORGANIZATION_ID,
            "userId": self.user_id,
            "topicName": self.topic_name,
            "omniChatUrl": self.chat_url,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }
        if self.execution_started_at:
            body["executionStartedAt"] = self.execution_started_at
        if self.state is JobState.EXECUTING:
            body["progress"] = self.progress
        if self.state is JobState.COMPLETE and self.result is not None:
            body["resultSummary"] = self.result["resultSummary"]
        if self.state in (JobState.COMPLETE, JobState.FAILED):
            body["completedAt"] = self.completed_at
        if self.state is JobState.FAILED:
            body["error"] = self.error
        if self.state is JobState.CANCELLED:
            body["cancelledAt"] = self.cancelled_at
            body["cancelledBy"] = self.cancelled_by
        return body

    def touch(self) -> None:
        self.updated_at = _iso()


ORGANIZATION_ID = "0f0e0d0c-0b0a-4908-8706-050403020100"


@dataclass
class WebhookDelivery:
    """A webhook the sandbox sent (kept for tests and `GET /sandbox/webhooks`)."""

    url: str
    event: str
    status_code: int | None
    error: str | None = None


class JobEngine:
    """Runs AI jobs on the server's event loop; jobs and conversations are written through to `store`."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        today: date,
        step_seconds: float = 0.2,
        store: JobStore | None = None,
        credit_limit: CreditLimit | None = None,
        webhook_on_cancel: bool = False,
    ) -> None:
        self._conn = conn
        self._today = today
        self.step_seconds = step_seconds
        self.store = store or JobStore()
        self.credit_limit = credit_limit
        """`None`: no limit. Set it at any time (`Sandbox.set_ai_credit_limit`)."""
        self.webhook_on_cancel = webhook_on_cancel
        self.jobs: dict[str, Job] = {}
        self.conversations: dict[str, ConversationRecord] = {}
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx2.AsyncClient | None = None
        self._load()

    def _load(self) -> None:
        """Read the stored conversations and jobs; a job the last stop cut off ends FAILED."""
        self.conversations = {c.id: c for c in self.store.conversations()}
        for body in self.store.jobs():
            job = Job.from_record(body)
            if not job.state.terminal:
                job.state = JobState.FAILED
                message = "The job was interrupted: the sandbox stopped before it finished"
                job.error = {"message": message, "code": "SANDBOX_RESTARTED", "detail": message}
                job.completed_at = _iso()
                job.touch()
                self._save(job)
            self.jobs[job.id] = job

    def _save(self, job: Job) -> None:
        self.store.save_job(job.id, job.conversation_id, job.created_at, job.record())
        conversation = self.conversations.get(job.conversation_id)
        if conversation is not None and conversation.updated_at < job.updated_at:
            conversation.updated_at = job.updated_at
            self.store.save_conversation(conversation)

    def forget_conversations(self) -> int:
        """Forget every conversation and job, as an Omni that purged them would (a knob for tests)."""
        self.conversations.clear()
        self.jobs.clear()
        return self.store.forget_conversations()

    # --- API ----------------------------------------------------------------------------------------

    def create(
        self,
        user: SandboxUser,
        *,
        prompt: str,
        scope: Scope,
        base_url: str,
        conversation_id: str | None = None,
        branch_id: str | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_metadata: dict[str, Any] | None = None,
        progress_webhook: bool = False,
        attachments: list[dict[str, Any]] | None = None,
    ) -> Job:
        """Submit a job and start it. Raises `SandboxHTTPError` (404 conversation, 409 active job)."""
        known = self.conversations.get(conversation_id) if conversation_id is not None else None
        if conversation_id is None:
            conversation_id = str(uuid.uuid4())
        elif known is None or known.user_id != user.id:
            raise SandboxHTTPError(404, f"Conversation {conversation_id} not found")
        elif any(j.conversation_id == conversation_id and not j.state.terminal for j in self.jobs.values()):
            raise SandboxHTTPError(409, "An active job already exists for this conversation")
        if known is None:
            now = _iso()
            name = question_of(prompt).splitlines()[0][:80]
            known = self.conversations[conversation_id] = ConversationRecord(conversation_id, user.id, name, now, now)
            self.store.save_conversation(known)
        job = Job(
            id=str(uuid.uuid4()),
            conversation_id=conversation_id,
            user_id=user.id,
            model_id=scope.model_id,
            topic_name=scope.topic_name,
            prompt=prompt,
            branch_id=branch_id,
            chat_url=f"{base_url.rstrip('/')}/chat/{conversation_id}",
            base_url=base_url,
            scope=scope,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            webhook_metadata=webhook_metadata,
            progress_webhook=progress_webhook,
            attachments=list(attachments or []),
        )
        self.jobs[job.id] = job
        self._save(job)
        task = asyncio.get_running_loop().create_task(self._run(job, user))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def get(self, job_id: str, user: SandboxUser, *, is_admin_key: bool) -> Job:
        """A job the caller may see: its owner's, or any with an org key. Others are 404, like Omni."""
        try:
            uuid.UUID(job_id)
        except ValueError:
            raise SandboxHTTPError(400, f"Bad Request: jobId must be a UUID, got {job_id[:64]!r}") from None
        job = self.jobs.get(job_id)
        if job is None or (job.user_id != user.id and not is_admin_key):
            raise SandboxHTTPError(404, f"Job {job_id} not found")
        return job

    def cancel(self, job: Job, by: SandboxUser) -> Job:
        """Cancel: QUEUED at once, EXECUTING after its current iteration; idempotent once terminal."""
        if job.state.terminal:
            return job
        if job.state is JobState.DELIVERING:
            raise SandboxHTTPError(400, "Job is not in a cancellable state")
        if job.state is JobState.QUEUED:
            self._finish_cancelled(job, by.id)
        else:
            job.cancel_requested_by = by.id
            self._save(job)
        return job

    def used_credits(self, user_id: str | None) -> int:
        """AI jobs that ran (started executing), in the organization or, given `user_id`, of that user."""
        return sum(
            1
            for j in self.jobs.values()
            if j.execution_started_at and j.denied_reason is None and user_id in (None, j.user_id)
        )

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()

    # --- the job's life -----------------------------------------------------------------------------

    async def _run(self, job: Job, user: SandboxUser) -> None:
        await asyncio.sleep(self.step_seconds)
        if job.state.terminal:  # cancelled while queued
            await self._notify_terminal(job)
            return
        limit = self.credit_limit
        if limit is not None and self.used_credits(job.user_id if limit.per == "user" else None) >= limit.jobs:
            self._finish_denied(job, limit.reason())
            await self._notify_terminal(job)
            return
        job.state = JobState.EXECUTING
        job.execution_started_at = _iso()
        self._save(job)
        answer: Answer | None = None
        steps = ["Choosing a topic for the question", "Generating a query", "Running the query"]
        for iteration, message in enumerate(steps, start=1):
            if job.cancel_requested_by:
                self._finish_cancelled(job, job.cancel_requested_by)
                await self._notify_terminal(job)
                return
            job.progress = {"iteration": iteration, "message": message, "updatedAt": _iso()}
            job.touch()
            await self._notify_progress(job)
            await asyncio.sleep(self.step_seconds)
        try:
            answer = answer_question(
                self._conn,
                user,
                question_of(job.prompt),
                scope=job.scope,
                base_url=job.base_url,
                today=self._today,
                topic_name=job.topic_name,
            )
        except (SandboxQueryError, SandboxHTTPError) as exc:
            self._finish_failed(job, exc)
        else:
            if job.cancel_requested_by:
                self._finish_cancelled(job, job.cancel_requested_by)
            else:
                job.progress = {
                    "iteration": 4,
                    "message": f"Query returned {len(answer.result.rows)} rows",
                    "updatedAt": _iso(),
                }
                await self._notify_progress(job)
                job.state = JobState.DELIVERING
                job.touch()
                self._save(job)
                await asyncio.sleep(self.step_seconds / 2)
                job.result = _job_result(job, answer)
                job.state = JobState.COMPLETE
                job.completed_at = _iso()
                job.touch()
                self._save(job)
        await self._notify_terminal(job)

    def _finish_cancelled(self, job: Job, by: str) -> None:
        job.state = JobState.CANCELLED
        job.cancelled_at = _iso()
        job.cancelled_by = by
        job.touch()
        self._save(job)

    def _finish_denied(self, job: Job, reason: str) -> None:
        """Denied before it ran: FAILED (states are unchanged), the reason in `error` and the webhook."""
        job.state = JobState.FAILED
        job.denied_reason = reason
        job.error = {"message": reason, "code": DENIED_CODE, "detail": reason, "reason": reason}
        job.completed_at = _iso()
        job.touch()
        self._save(job)

    def _finish_failed(self, job: Job, exc: SandboxQueryError | SandboxHTTPError) -> None:
        detail = exc.detail if isinstance(exc, SandboxHTTPError) else str(exc)
        code = "QUERY_GENERATION_ERROR" if isinstance(exc, SandboxQueryError) else "REQUEST_ERROR"
        job.state = JobState.FAILED
        job.error = {"message": detail.split("\n")[0], "code": code, "detail": detail}
        job.completed_at = _iso()
        job.touch()
        self._save(job)

    # --- webhooks -----------------------------------------------------------------------------------

    async def _notify_progress(self, job: Job) -> None:
        if job.webhook_url and job.progress_webhook:
            payload = {
                "event_id": _event_id(job, "PROGRESS"),
                "jobId": job.id,
                "status": job.state.value,
                "progress": job.progress,
                "metadata": job.webhook_metadata,
            }
            await self._deliver(job, payload, attempts=1)

    async def _notify_terminal(self, job: Job) -> None:
        if not job.webhook_url or (job.state is JobState.CANCELLED and not self.webhook_on_cancel):
            return  # Omni documents no webhook for a cancelled job
        event = _EVENTS[job.state]
        if job.denied_reason is not None:
            event = "job.denied"
        payload: dict[str, Any] = {
            "event_id": _event_id(job, "DENIED" if job.denied_reason is not None else job.state.value),
            "event": event,
            "jobId": job.id,
            "status": job.state.value,
            "result_summary": job.result["resultSummary"] if job.result else None,
            "metadata": job.webhook_metadata,
            "completed_at": job.completed_at or job.cancelled_at,
        }
        if job.error:
            payload["error"] = job.error
        if job.denied_reason is not None:
            payload["reason"] = job.denied_reason
        await self._deliver(job, payload, attempts=3)

    async def _deliver(self, job: Job, payload: dict[str, Any], *, attempts: int) -> None:
        assert job.webhook_url is not None and job.webhook_secret is not None
        if self._http is None:
            self._http = httpx2.AsyncClient(timeout=10.0)
        body = json.dumps(payload, separators=(",", ":")).encode()
        for attempt in range(attempts):
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Omni-Signature-Timestamp": timestamp,
                "X-Omni-Signature": sign_webhook(job.webhook_secret, timestamp, body),
            }
            try:
                response = await self._http.post(job.webhook_url, content=body, headers=headers)
            except httpx2.HTTPError as exc:
                self.webhook_deliveries.append(WebhookDelivery(job.webhook_url, payload["status"], None, str(exc)))
            else:
                self.webhook_deliveries.append(
                    WebhookDelivery(job.webhook_url, payload["status"], response.status_code)
                )
                if response.status_code < 500:
                    return
            if attempt + 1 < attempts:
                await asyncio.sleep(0.2 * 2**attempt)
        logger.warning("webhook for job %s to %s was not delivered", job.id, job.webhook_url)


_EVENTS = {JobState.COMPLETE: "job.complete", JobState.FAILED: "job.failed", JobState.CANCELLED: "job.cancelled"}
"""The `event` of each terminal payload; `job.cancelled` is the sandbox's own (Omni documents no such event)."""


def _event_id(job: Job, status: str) -> str:
    return f"evt_{job.id.split('-')[0]}_{status}_{int(time.time())}"


def _job_result(job: Job, answer: Answer) -> dict[str, Any]:
    """The `/result` body: final message, summary, topic, link, and the actions that produced it."""
    r = answer.result
    preview = job_preview(r)
    message = answer.summary()
    return {
        "message": message,
        "resultSummary": message,
        "topic": answer.topic.name,
        "omniChatUrl": job.chat_url,
        "actions": [
            {
                "type": "generate_query",
                "message": f"Queried topic {answer.topic.name!r} for: {job.prompt}",
                "timestamp": _iso(),
                "result": {
                    "queryName": answer.topic.label,
                    "status": "success",
                    "hasResults": bool(r.rows),
                    "totalRowCount": r.total_row_count,
                    "csvResult": preview.csv,
                    "csvResultWasTruncated": preview.truncated,
                    "query": r.query.to_omni_dict(),
                    "accessFilters": r.access_filters,
                    "resultId": str(uuid.uuid4()),
                },
            },
            *attachment_failures(job.attachments),
            {"type": "summarize", "message": message, "timestamp": _iso()},
        ],
    }
