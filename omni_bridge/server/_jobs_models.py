"""The bodies of the Omni-compatible AI Jobs API, and how a response record maps onto them.

A client written for Omni's REST path (AI Jobs: create, poll, fetch the result, cancel) must read the bridge's
answers unchanged, so every body here has Omni's field names (camelCase, and the mixed snake/camel of webhook
payloads), states and shapes, as the sandbox serves them too. They are pydantic models so that the request is
validated in one place (with Omni-style `Bad Request: prompt: Required` details) and the OpenAPI document can
describe every answer.

A job is a `ResponseRecord` with `origin="job"`; what Omni reports but a response record does not hold (the
Omni user id, the model, topic and branch the client named, the chat link) is kept as `JobFacts` in the
thread's metadata when the job creates its conversation.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, JsonValue, SecretStr, ValidationError, model_validator

from omni_bridge.agent.events import (
    ChartPart,
    ChartReady,
    ContentPart,
    Event,
    EventAdapter,
    Progress,
    TextPart,
    ToolCallFinished,
    ToolCallStarted,
)
from omni_bridge.stores import ResponseRecord, ResponseStatus, StoredEvent, ThreadRecord
from omni_bridge.tools import Artifact, JobAttachment, check_attachments

__all__ = [
    "FACTS_KEY",
    "JOB_STATES",
    "MAX_JOB_BODY_BYTES",
    "CreateJobBody",
    "JobAction",
    "JobCancelled",
    "JobCreated",
    "JobError",
    "JobFacts",
    "JobProgress",
    "JobResult",
    "JobStatus",
    "QueryResult",
    "answer_text",
    "build_result",
    "build_status",
    "iso_time",
    "organization_id",
    "parse_events",
    "progress_of",
    "progress_payload",
    "result_ids",
    "step_count",
    "terminal_payload",
    "validation_detail",
]

EXAMPLE_MODEL_ID = "6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f"
"""The model of the OpenAPI examples: the sandbox's ecommerce model."""

JOB_STATES: dict[ResponseStatus, str] = {
    "queued": "QUEUED",
    "running": "EXECUTING",
    "succeeded": "COMPLETE",
    "failed": "FAILED",
    "canceled": "CANCELLED",
}
"""Omni's job state of each response status (`DELIVERING` has no counterpart: a response ends in one write)."""

FACTS_KEY = "omni_job"
"""Where a job-created thread keeps its `JobFacts` in `ThreadRecord.metadata`."""

MAX_METADATA_BYTES = 16 * 1024
MAX_JOB_BODY_BYTES = 21 * 1024 * 1024
"""A create-job body at most: room for Omni's 15 MB of attachments, base64-encoded, and the prompt."""
DENIED_CODE = "JOB_DENIED"
"""`error.code` of a job Omni denied (e.g. over its AI credit limit); its terminal webhook is `job.denied`."""
MAX_SECRET_CHARS = 512
_DEFAULT_PROGRESS = "Working on the question"
_ORG_NAMESPACE = uuid.UUID("7b0f4c1e-5a0d-4d4e-9a55-0b1d9e0f6a11")


def _iso(moment: datetime | None) -> str | None:
    """Omni's timestamp form, e.g. `2025-01-24T10:30:00.000Z`."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


iso_time = _iso
"""Omni's timestamp form, for the other routes of the Omni-compatible face."""


def organization_id(tenant: str) -> str:
    """The `organizationId` of a tenant: a stable UUID derived from the service key's name."""
    return str(uuid.uuid5(_ORG_NAMESPACE, tenant))


# --- the request ---------------------------------------------------------------------------------------------


class CreateJobBody(BaseModel):
    """`POST /api/v1/ai/jobs`. Unknown keys are ignored, as Omni's spec allows extra keys."""

    model_config = ConfigDict(
        extra="ignore",
        str_strip_whitespace=True,
        hide_input_in_errors=True,
        json_schema_extra={
            "examples": [
                # The sandbox's ecommerce model: the example runs as it is against `--sandbox`.
                {"modelId": EXAMPLE_MODEL_ID, "prompt": "What was revenue by region last quarter?"},
                {
                    "modelId": EXAMPLE_MODEL_ID,
                    "prompt": "Which products grew fastest this year?",
                    "topicName": "order_items",
                    "webhookUrl": "https://example.com/omni-jobs",
                    "webhookSigningSecret": "a-secret-of-your-own",
                    "webhookMetadata": {"ticket": "T-1234"},
                    "progressWebhookEnabled": True,
                },
            ]
        },
    )

    modelId: uuid.UUID
    prompt: str = Field(min_length=1, max_length=20_000)
    topicName: str | None = Field(None, min_length=1, max_length=256)
    branchId: uuid.UUID | None = None
    conversationId: uuid.UUID | None = None
    webhookUrl: AnyHttpUrl | None = None
    webhookSigningSecret: SecretStr | None = None
    webhookMetadata: dict[str, JsonValue] | None = None
    progressWebhookEnabled: bool = False
    attachments: list[JobAttachment] = Field(default_factory=list)
    """Images or PDFs for Omni's AI (passed on to Omni by the `omni` engine)."""

    @model_validator(mode="after")
    def _webhook_options(self) -> CreateJobBody:
        secret = self.webhookSigningSecret
        if secret is not None and not 1 <= len(secret.get_secret_value()) <= MAX_SECRET_CHARS:
            raise ValueError(f"webhookSigningSecret must have 1 to {MAX_SECRET_CHARS} characters")
        if self.webhookUrl is not None and secret is None:
            raise ValueError("webhookSigningSecret is required when webhookUrl is set")
        if self.progressWebhookEnabled and self.webhookUrl is None:
            raise ValueError("progressWebhookEnabled needs webhookUrl")
        if self.webhookMetadata is not None and len(json.dumps(self.webhookMetadata)) > MAX_METADATA_BYTES:
            raise ValueError(f"webhookMetadata must be at most {MAX_METADATA_BYTES} bytes as JSON")
        check_attachments(self.attachments, self.prompt)
        return self


def validation_detail(exc: ValidationError) -> str:
    """Omni's 400 detail for a body that does not validate, e.g. `Bad Request: prompt: Required`."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(p) for p in error["loc"])
        message = "Required" if error["type"] == "missing" else error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "Bad Request: " + "; ".join(parts)


class JobFacts(BaseModel):
    """What the jobs API reports about a job-created conversation beyond the response record."""

    model_config = ConfigDict(extra="ignore")

    user_id: str
    """The Omni user the jobs run as (`userId`)."""
    model_id: str | None = None
    topic_name: str | None = None
    branch_id: str | None = None
    chat_url: str
    """`omniChatUrl`: where the conversation can be opened (the bridge's chat page)."""

    @classmethod
    def of(cls, thread: ThreadRecord) -> JobFacts | None:
        """The facts kept in a thread's metadata; `None` for a thread no job created."""
        raw = thread.metadata.get(FACTS_KEY)
        if not isinstance(raw, dict):
            return None
        try:
            return cls.model_validate(raw)
        except ValidationError:
            return None


# --- the answers -----------------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def body(self) -> dict[str, Any]:
        """The JSON body: the fields that were set (state-specific ones are absent in other states)."""
        return self.model_dump(mode="json", exclude_unset=True)


class JobCreated(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "jobId": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
                    "conversationId": "1f2e3d4c-5b6a-4978-8a6b-5c4d3e2f1a0b",
                    "omniChatUrl": "http://127.0.0.1:8000/?thread=1f2e3d4c-5b6a-4978-8a6b-5c4d3e2f1a0b",
                }
            ]
        }
    )

    jobId: str
    conversationId: str
    omniChatUrl: str


class JobProgress(_Body):
    iteration: int
    message: str
    updatedAt: str


class JobError(_Body):
    message: str
    code: str | None = None
    detail: str | None = None
    reason: str | None = None
    """Why Omni denied the job (`code` `JOB_DENIED`), as the `job.denied` webhook's `reason`."""


class JobStatus(_Body):
    """`GET /api/v1/ai/jobs/{jobId}`: always-present fields, plus those of the job's state."""

    id: str
    state: str
    prompt: str
    conversationId: str
    modelId: str | None
    branchId: str | None
    organizationId: str
    userId: str
    topicName: str | None
    omniChatUrl: str
    createdAt: str
    updatedAt: str
    executionStartedAt: str | None = None
    progress: JobProgress | None = None
    resultSummary: str | None = None
    completedAt: str | None = None
    error: JobError | None = None
    cancelledAt: str | None = None
    cancelledBy: str | None = None


class QueryResult(_Body):
    queryName: str
    status: str
    hasResults: bool
    totalRowCount: int
    csvResult: str
    csvResultWasTruncated: bool
    query: dict[str, JsonValue]
    resultId: str | None = None


class JobAction(_Body):
    type: str
    message: str
    timestamp: str
    result: QueryResult | None = None


class JobResult(_Body):
    """`GET /api/v1/ai/jobs/{jobId}/result` of a `COMPLETE` job."""

    message: str
    resultSummary: str
    topic: str | None
    omniChatUrl: str
    actions: list[JobAction]


class JobCancelled(_Body):
    jobId: str
    state: str


# --- mapping a response onto them --------------------------------------------------------------------------------


def answer_text(parts: Sequence[ContentPart]) -> str:
    return "".join(part.text for part in parts if isinstance(part, TextPart))


def parse_events(stored: Sequence[StoredEvent]) -> list[Event]:
    """The stored events as typed events; one a newer writer added that this reader does not know is skipped."""
    events: list[Event] = []
    for item in stored:
        try:
            events.append(EventAdapter.validate_python(item.event))
        except ValidationError:
            continue
    return events


def step_count(events: Sequence[Event]) -> int:
    """The steps among `events`: tool calls started, and progress reports of an engine that does not stream."""
    return sum(1 for e in events if isinstance(e, ToolCallStarted | Progress))


def progress_of(record: ResponseRecord, steps: int) -> JobProgress | None:
    """`progress` of a running job: its step number and latest line; `None` in any other state."""
    if record.status != "running":
        return None
    return JobProgress(
        iteration=max(steps, 1), message=record.progress or _DEFAULT_PROGRESS, updatedAt=_iso(record.updated_at) or ""
    )


def _error(record: ResponseRecord) -> JobError:
    if record.error is None:
        return JobError(message="The job failed", code="JOB_FAILED")
    detail = record.error.message
    error = JobError(message=detail.split("\n", 1)[0], code=record.error.type.upper(), detail=detail)
    if record.error.type == "job_denied":
        error.code, error.reason = DENIED_CODE, detail
    return error


def build_status(
    record: ResponseRecord, facts: JobFacts, *, organization: str, progress: JobProgress | None
) -> JobStatus:
    """The status body of a job in whatever state it is."""
    state = JOB_STATES[record.status]
    status = JobStatus(
        id=record.id,
        state=state,
        prompt=record.prompt,
        conversationId=record.thread_id,
        modelId=facts.model_id,
        branchId=facts.branch_id,
        organizationId=organization,
        userId=facts.user_id,
        topicName=facts.topic_name,
        omniChatUrl=facts.chat_url,
        createdAt=_iso(record.created_at) or "",
        updatedAt=_iso(record.updated_at) or "",
    )
    if record.started_at is not None:
        status.executionStartedAt = _iso(record.started_at)
    if state == "EXECUTING":
        status.progress = progress
    if state == "COMPLETE":
        status.resultSummary = answer_text(record.parts)
    if state in ("COMPLETE", "FAILED"):
        status.completedAt = _iso(record.finished_at or record.updated_at)
    if state == "FAILED":
        status.error = _error(record)
    if state == "CANCELLED":
        status.cancelledAt = _iso(record.finished_at or record.updated_at)
        status.cancelledBy = record.canceled_by
    return status


def result_ids(record: ResponseRecord, events: Sequence[Event]) -> list[str]:
    """The artifacts the job's queries kept, in the order they came (tool calls, then charts of the answer)."""
    found: list[str] = []
    for event in events:
        if isinstance(event, ToolCallFinished | ChartReady) and event.result_id and event.result_id not in found:
            found.append(event.result_id)
    for part in record.parts:
        if isinstance(part, ChartPart) and part.result_id and part.result_id not in found:
            found.append(part.result_id)
    return found


def _query_result(artifact: Artifact, *, ok: bool) -> QueryResult:
    total = artifact.total_row_count if artifact.total_row_count is not None else artifact.row_count
    query = artifact.data.get("query")
    name = artifact.data.get("queryName")
    return QueryResult(
        queryName=name if isinstance(name, str) and name else artifact.tool,
        status="success" if ok else "error",
        hasResults=artifact.row_count > 0,
        totalRowCount=total,
        csvResult=artifact.csv,
        csvResultWasTruncated=bool(artifact.data.get("truncated")) or total > artifact.row_count,
        query=query if isinstance(query, dict) else {},
        resultId=artifact.id,
    )


def _missing_result(result_id: str, finished: ToolCallFinished) -> QueryResult:
    """A query whose table is no longer kept (an artifact store may drop old ones): counts only, no rows."""
    rows = finished.row_count or 0
    return QueryResult(
        queryName=finished.tool,
        status="success",
        hasResults=rows > 0,
        totalRowCount=rows,
        csvResult="",
        csvResultWasTruncated=rows > 0,
        query={},
        resultId=result_id,
    )


def _call_message(started: ToolCallStarted | None, finished: ToolCallFinished) -> str:
    asked = started.arguments.get("prompt") or started.arguments.get("question") if started is not None else None
    about = f" for {asked!r}" if isinstance(asked, str) and asked else ""
    return f"Ran {finished.tool}{about}: {finished.summary}"


def build_result(
    record: ResponseRecord, facts: JobFacts, events: Sequence[Event], artifacts: Mapping[str, Artifact]
) -> JobResult:
    """The result body of a `COMPLETE` job: the answer, and one action per step that led to it.

    Tool calls that kept a table become `generate_query` actions carrying the table as CSV (from `artifacts`,
    looked up by `result_ids`); other tool calls become `tool_call` actions; charts of tables no tool call
    named (Omni's own agent reports its queries that way) become `generate_query` actions too; the answer
    itself is the closing `summarize` action.
    """
    text = answer_text(record.parts)
    stamp = _iso(record.finished_at or record.updated_at) or ""
    started = {e.call_id: e for e in events if isinstance(e, ToolCallStarted)}
    actions: list[JobAction] = []
    done: set[str] = set()
    topic: str | None = None
    for event in events:
        if isinstance(event, ToolCallFinished):
            message = _call_message(started.get(event.call_id), event)
            artifact = artifacts.get(event.result_id) if event.result_id else None
            if event.result_id and (artifact is None or artifact.is_table):
                done.add(event.result_id)
                result = (
                    _query_result(artifact, ok=not event.is_error)
                    if artifact is not None
                    else _missing_result(event.result_id, event)
                )
                actions.append(JobAction(type="generate_query", message=message, timestamp=stamp, result=result))
            else:
                actions.append(JobAction(type="tool_call", message=message, timestamp=stamp))
    for result_id in result_ids(record, events):
        artifact = artifacts.get(result_id)
        if result_id in done or artifact is None or not artifact.is_table:
            continue
        name = artifact.data.get("queryName") or artifact.tool
        message = f"Queried {name}: {artifact.row_count:,} rows"
        actions.append(
            JobAction(type="generate_query", message=message, timestamp=stamp, result=_query_result(artifact, ok=True))
        )
    for artifact in (artifacts.get(r) for r in result_ids(record, events)):
        found = artifact.data.get("topicName") or artifact.data.get("topic") if artifact is not None else None
        if isinstance(found, str) and found:
            topic = found
            break
    actions.append(JobAction(type="summarize", message=text, timestamp=stamp))
    return JobResult(
        message=text, resultSummary=text, topic=topic or facts.topic_name, omniChatUrl=facts.chat_url, actions=actions
    )


# --- webhook payloads ------------------------------------------------------------------------------------------


def _event_id(job_id: str, status: str, now: float) -> str:
    """`evt_<first block of the job id>_<STATUS>_<unix seconds>`, like Omni's."""
    return f"evt_{job_id.split('-')[0]}_{status}_{int(now)}"


_EVENTS = {"COMPLETE": "job.complete", "FAILED": "job.failed", "CANCELLED": "job.cancelled"}


def terminal_payload(record: ResponseRecord, *, now: float | None = None) -> dict[str, JsonValue]:
    """The webhook body of a finished job: Omni's keys, its `event` (`job.complete`, `job.failed`, `job.denied`),
    `error` when it `FAILED`, and `reason` when Omni denied it (the state is FAILED then too)."""
    state = JOB_STATES[record.status]
    metadata = record.webhook.metadata if record.webhook is not None else None
    denied = record.error is not None and record.error.type == "job_denied" and state == "FAILED"
    payload: dict[str, JsonValue] = {
        "event_id": _event_id(record.id, "DENIED" if denied else state, time.time() if now is None else now),
        "event": "job.denied" if denied else _EVENTS.get(state, state.lower()),
        "jobId": record.id,
        "status": state,
        "result_summary": answer_text(record.parts) if state == "COMPLETE" else None,
        "metadata": metadata,
        "completed_at": _iso(record.finished_at or record.updated_at),
    }
    if state == "FAILED":
        error = _error(record)
        payload["error"] = error.body()
        if denied:
            payload["reason"] = error.reason
    return payload


def progress_payload(
    record: ResponseRecord, progress: JobProgress, *, now: float | None = None
) -> dict[str, JsonValue]:
    """The webhook body of a progress event: the terminal payload's keys, with `progress` for the summary."""
    metadata = record.webhook.metadata if record.webhook is not None else None
    return {
        "event_id": _event_id(record.id, "PROGRESS", time.time() if now is None else now),
        "jobId": record.id,
        "status": JOB_STATES[record.status],
        "progress": progress.body(),
        "metadata": metadata,
    }
