"""The `omni` engine: Omni's own AI answers, through the AI Jobs REST API (`/api/v1/ai/jobs`).

Why it exists: it needs no LLM credentials at all. The bridge submits the question as a job acting for the
conversation's Omni user (`userId`), polls the job with exponential backoff (Omni suggests every 2-5 s) while
turning its progress into `Progress` events, then reads the result: the answer's text, and each query's
rows as CSV, which are kept as artifacts owned by the user and drawn as charts where they can be.

One Omni conversation per bridge conversation: the first job's `conversationId` is saved at once and every
later question continues it, so Omni's agent keeps the context. If Omni no longer knows it, a new one is started
with the recent context carried over, and the answer says so; a job Omni denies ends as `job_denied`
(`omni_recovery`). Omni allows one active job per conversation
(409); a question that arrives while an earlier job still runs waits for it, within `busy_retries`.

Polls stay within the API key's budget of REST calls (`RestPacer`): the next poll waits for the backoff or for a
free turn, whichever is later, and a poll the budget refuses is made later, so many jobs polling at once slow
their polls down instead of spending the budget or failing.

A run that is cancelled, or whose consumer stops listening, asks Omni to cancel the job too (shielded from
the cancellation and bounded in time), so no job keeps running for nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from omni_bridge.agent.engines.chart_pages import ChartPages
from omni_bridge.agent.engines.omni_recovery import (
    Rebound,
    denial_of_refusal,
    denial_of_status,
    denied_message,
    is_lost_conversation,
)
from omni_bridge.agent.engines.provenance import provenance_parts, rerun_as
from omni_bridge.agent.engines.run import JobOptions, Run
from omni_bridge.agent.events import (
    AssistantMessage,
    ChartPart,
    ChartReady,
    ContentPart,
    ErrorEvent,
    Event,
    FinalMessage,
    Progress,
    StructuredActionPart,
    TextDelta,
    TextPart,
)
from omni_bridge.exceptions import ConfigError, ErrorType, ForeignErrorCode, OmniError, OmniHTTPError
from omni_bridge.tools import (
    MAX_CHART_POINTS,
    Artifact,
    ArtifactStore,
    JobCreated,
    JobResult,
    JobState,
    JobStatus,
    OmniRestClient,
    QueryProvenance,
    RestBudgetBusy,
    complete_preview,
    derive_chart,
    query_provenance,
)

__all__ = ["OmniEngine"]

log = logging.getLogger("omni_bridge.agent")

Sleep = Callable[[float], Awaitable[None]]
_T = TypeVar("_T")

CANCEL_TIMEOUT = 5.0
"""Seconds a run that is being stopped waits for Omni to accept the cancel of its job."""
TOOL_NAME = "omni_ai_job"
"""The `tool` recorded on the artifacts this engine keeps."""

_STATE_LINES = {
    JobState.QUEUED: "Waiting for Omni's AI to start",
    JobState.EXECUTING: "Omni's AI is working on the question",
    JobState.DELIVERING: "Preparing the answer",
}
_ERROR_TYPES: dict[int, ErrorType] = {
    400: "bad_request",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    429: "rate_limited",
}


@dataclass
class _Failure:
    """Why a run ends `errored`: what the `ErrorEvent` says."""

    error_type: ErrorType | ForeignErrorCode
    """One of the bridge's own kinds, or the code Omni gave a failed job."""
    message: str
    retryable: bool


@dataclass
class _Answer:
    """What a finished job gave: the text, the charts (with their artifacts), the link to Omni."""

    text: str = ""
    charts: list[ChartPart] = field(default_factory=list)
    pages: ChartPages = field(default_factory=ChartPages)
    chat_url: str | None = None
    notices: list[ContentPart] = field(default_factory=list)
    """Said before the answer (e.g. that Omni had lost the conversation and a new one was started)."""
    provenance: list[QueryProvenance] = field(default_factory=list)


class OmniEngine:
    """Answers with Omni's own AI through AI Jobs, acting for the conversation's Omni user.

    Args:
        rest: the client of Omni's REST API (an organization key: it acts for users with `userId`).
        artifacts: where each table result is kept, owned by the user, so it can be read later.
        model_id: the shared model to ask; `None` asks the first shared model Omni lists (looked up once).
        topic_name: pin a topic; `None` lets Omni's AI pick one.
        poll_initial: seconds before the first re-poll of a job (and the first wait on a busy conversation).
        poll_max: the longest wait between polls; each wait doubles up to it.
        timeout: seconds one answer may take in all; then the job is cancelled and the run ends `errored`.
        busy_retries: how often to submit again while an earlier job of the conversation is active (409).
        sleep: how to wait between polls (tests pass a recorder).
    """

    name: Literal["omni"] = "omni"

    def __init__(
        self,
        rest: OmniRestClient,
        *,
        artifacts: ArtifactStore,
        model_id: str | None = None,
        topic_name: str | None = None,
        poll_initial: float = 0.5,
        poll_max: float = 5.0,
        timeout: float = 600.0,
        busy_retries: int = 5,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if poll_initial <= 0 or poll_max < poll_initial:
            raise ValueError("poll_initial must be positive and poll_max at least poll_initial")
        if timeout <= 0 or busy_retries < 0:
            raise ValueError("timeout must be positive and busy_retries not negative")
        self._rest = rest
        self._artifacts = artifacts
        self._model_id = model_id
        self._model_lock = asyncio.Lock()
        self.topic_name = topic_name
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self.timeout = timeout
        self.busy_retries = busy_retries
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"<OmniEngine model_id={self._model_id!r} topic_name={self.topic_name!r}>"

    async def run(self, run: Run) -> AsyncGenerator[Event, None]:
        """Answer `run.question` with Omni's AI, yielding events; the last one is a `FinalMessage` unless cancelled.

        Raises:
            asyncio.CancelledError: the run was cancelled; Omni was asked to cancel the job and the
                conversation was saved first.
        """
        conversation = run.conversation
        user_id = conversation.identity.user_id
        conversation.messages.append({"role": "user", "content": [{"type": "text", "text": run.question}]})
        await run.checkpoint()
        deadline = asyncio.get_running_loop().time() + self.timeout
        job: JobCreated | None = None
        status: JobStatus | None = None
        failure: _Failure | None = None
        answer = _Answer()
        try:
            job, rebound = await self._submit(run, deadline)
            answer.chat_url = job.omni_chat_url
            if conversation.omni_conversation_id != job.conversation_id:
                conversation.omni_conversation_id = job.conversation_id
                await run.checkpoint()
            if rebound is not None:
                answer.notices = rebound.parts(job.conversation_id)
                yield Progress(**run.stamp(), message=rebound.notice)
            async with contextlib.aclosing(self._poll(run, job, deadline)) as updates:
                async for update in updates:
                    if isinstance(update, JobStatus):
                        status = update
                    else:
                        yield update
            if status is not None and status.state is JobState.COMPLETE:
                result = await _bounded(deadline, self._rest.get_job_result(job.job_id, user_id=user_id))
                await self._read_result(run, result, status, answer)
                async for event in answer.pages.for_job(run, job.job_id, title=run.question):  # Omni's chart page
                    yield event
        except (asyncio.CancelledError, GeneratorExit):
            # Cancelled, or the consumer stopped listening: Omni must stop too. No event may follow.
            log.debug("run %s cancelled", run.response_id)
            if job is not None and not _ended(status):
                await asyncio.shield(self._cancel_job(job.job_id, user_id))
            await asyncio.shield(run.checkpoint())
            raise
        except TimeoutError:
            failure = _Failure("timeout", f"Omni's AI did not answer within {self.timeout:g} s.", retryable=True)
        except OmniHTTPError as exc:
            failure = _http_failure(exc)
        except RestBudgetBusy as exc:
            failure = _Failure(exc.error_type, f"The bridge is at its budget of calls to Omni: {exc}", exc.retryable)
        except OmniError as exc:
            failure = _Failure(exc.error_type, f"Omni could not be reached: {exc}", exc.retryable)
        except ConfigError as exc:
            failure = _Failure(exc.error_type, str(exc), exc.retryable)
        if failure is not None and job is not None and not _ended(status):
            # The job may still run on Omni (a timeout, a failed poll): nobody would read its answer.
            await asyncio.shield(self._cancel_job(job.job_id, user_id))

        if status is not None and status.state is JobState.FAILED:
            failure = _job_failure(status)
        if failure is None and status is not None and status.state is JobState.CANCELLED:
            # Someone else (an admin, Omni's own UI) cancelled the job: there is no answer, only the link.
            log.debug("run %s: the job was cancelled in Omni by %s", run.response_id, status.cancelled_by)
            await run.checkpoint()
            yield self._final(run, answer, "canceled")
            return
        if failure is not None:
            log.info("run %s failed: %s", run.response_id, failure.error_type)
            yield ErrorEvent(
                **run.stamp(), error_type=failure.error_type, message=failure.message, retryable=failure.retryable
            )
            answer = _Answer(text=failure.message, chat_url=answer.chat_url, notices=answer.notices)
        else:
            for chart in answer.charts:
                yield ChartReady(**run.stamp(), chart=chart.chart, result_id=chart.result_id)
            if answer.text:
                # Omni does not stream its answer: the whole text is one delta, for consumers that show deltas.
                yield TextDelta(**run.stamp(), text=answer.text)
        if answer.text:
            conversation.messages.append({"role": "assistant", "content": [{"type": "text", "text": answer.text}]})
        await run.checkpoint()
        yield self._final(run, answer, "errored" if failure is not None else "completed")

    async def _submit(self, run: Run, deadline: float) -> tuple[JobCreated, Rebound | None]:
        """Create the job; in a new Omni conversation, with the context carried over, if Omni lost the old one."""
        model_id = await _bounded(deadline, self._model())
        lost = run.conversation.omni_conversation_id
        try:
            return await self._create(run, deadline, model_id, run.question, lost), None
        except OmniHTTPError as exc:
            if lost is None or not is_lost_conversation(exc):
                raise
        log.info("run %s: Omni no longer knows its conversation; starting a new one", run.response_id)
        rebound = Rebound.of(run.conversation.messages[:-1], run.question, lost_conversation_id=lost)
        return await self._create(run, deadline, model_id, rebound.prompt, None), rebound

    async def _create(
        self, run: Run, deadline: float, model_id: str, prompt: str, conversation_id: str | None
    ) -> JobCreated:
        """Create the job, waiting (with backoff) while an earlier job of the conversation is still active."""
        delay = self.poll_initial
        options = run.job_options or JobOptions()
        for attempt in range(self.busy_retries + 1):
            try:
                return await _bounded(
                    deadline,
                    self._rest.create_job(
                        model_id=model_id,
                        prompt=prompt,
                        user_id=run.conversation.identity.user_id,
                        topic_name=self.topic_name,
                        conversation_id=conversation_id,
                        branch_id=options.branch_id,
                        attachments=options.attachments,
                    ),
                )
            except OmniHTTPError as exc:
                if exc.status != 409 or attempt == self.busy_retries:
                    raise
            log.debug("run %s: the Omni conversation is busy; retry %d in %.2fs", run.response_id, attempt + 1, delay)
            await _bounded(deadline, self._sleep(delay))
            delay = min(delay * 2, self.poll_max)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _poll(self, run: Run, job: JobCreated, deadline: float) -> AsyncGenerator[Progress | JobStatus, None]:
        """A `Progress` whenever the job's state or progress line changes; the terminal status last."""
        user_id = run.conversation.identity.user_id
        delay = self.poll_initial
        shown: tuple[JobState, str] | None = None
        while True:
            try:
                status = await _bounded(deadline, self._rest.get_job(job.job_id, user_id=user_id))
            except RestBudgetBusy as exc:
                # Nothing was sent and the job runs on at Omni: poll when the budget has room, do not fail.
                await _bounded(deadline, self._sleep(max(delay, exc.retry_after)))
                continue
            if status.state.terminal:
                yield status
                return
            progress = status.progress
            line = progress.message if progress is not None and progress.message else _STATE_LINES[status.state]
            if (status.state, line) != shown:
                shown = (status.state, line)
                iteration = progress.iteration if progress is not None else None
                yield Progress(**run.stamp(), message=line, iteration=iteration)
            # The next poll waits for the backoff, or longer while the key's budget has no free turn (the wait
            # adapts to the other calls of the key instead of queueing polls in the pacer).
            await _bounded(deadline, self._sleep(max(delay, self._rest.pace_wait())))
            delay = min(delay * 2, self.poll_max)

    async def _model(self) -> str:
        """The pinned model, else the first shared model Omni lists (asked once, then kept)."""
        if self._model_id is not None:
            return self._model_id
        async with self._model_lock:
            if self._model_id is None:
                models = await self._rest.list_models(model_kind="SHARED")
                shared = [m for m in models if (m.model_kind or "").upper() == "SHARED" and m.deleted_at is None]
                if not shared:
                    raise ConfigError("Omni lists no shared model to ask; pin one with `model_id` (OMNI_MODEL_ID)")
                self._model_id = shared[0].id
            return self._model_id

    async def _read_result(self, run: Run, result: JobResult, status: JobStatus, answer: _Answer) -> None:
        """Fill `answer` from a finished job: its text, and each query's table kept as an artifact."""
        answer.text = result.message or result.result_summary or status.result_summary or ""
        answer.chat_url = result.omni_chat_url or answer.chat_url
        for query in result.query_results:
            if not query.csv_result:
                continue
            data = {
                "queryName": query.query_name,
                "query": query.query,
                "truncated": query.csv_result_was_truncated,
                "topic": result.topic,
                "jobId": status.id,
                "omniChatUrl": answer.chat_url,
                "totalRowCount": query.total_row_count,
                "accessFilters": (query.model_extra or {}).get("accessFilters"),
            }
            user_id = run.conversation.identity.user_id
            try:
                table, completeness = await complete_preview(query.csv_result, data, rerun_as(self._rest, user_id))
                artifact, head = Artifact.from_csv(
                    table,
                    owner=user_id,
                    tool=TOOL_NAME,
                    total_row_count=completeness.total_rows,
                    data={**data, "partial": completeness.partial},
                    keep_rows=MAX_CHART_POINTS + 1,
                )
            except (ValueError, csv.Error):
                log.warning("run %s: a query result of job %s is not CSV; not kept", run.response_id, status.id)
                continue
            await self._artifacts.put(artifact)
            found = query_provenance(
                TOOL_NAME, data, row_count=artifact.row_count, completeness=completeness, result_id=artifact.id
            )
            answer.provenance += [found] if found is not None else []
            chartable = artifact.row_count <= MAX_CHART_POINTS and not completeness.partial
            chart = derive_chart(artifact.columns, head) if chartable else None
            if chart is not None:
                answer.charts.append(ChartPart(chart=chart, result_id=artifact.id))

    async def _cancel_job(self, job_id: str, user_id: str) -> None:
        """Ask Omni to cancel the job, within `CANCEL_TIMEOUT`; a refusal is logged (the run is over anyway)."""
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT):
                cancelled = await self._rest.cancel_job(job_id, user_id=user_id)
        except (OmniError, TimeoutError) as exc:
            # E.g. 400 for a job already DELIVERING: it ends by itself in a moment.
            log.warning("could not cancel Omni job %s: %s", job_id, exc)
        else:
            log.debug("Omni job %s is %s after the cancel", job_id, cancelled.state)

    def _final(self, run: Run, answer: _Answer, outcome: Literal["completed", "errored", "canceled"]) -> FinalMessage:
        parts: list[ContentPart] = [*answer.notices]
        parts += [TextPart(text=answer.text)] if answer.text else []
        parts.extend(answer.charts[-1:])
        parts.extend(answer.pages.parts)
        parts.extend(provenance_parts(answer.provenance))
        if answer.chat_url:
            parts.append(StructuredActionPart(action="open_in_omni", url=answer.chat_url))
        message = AssistantMessage(
            id=run.response_id, conversation_id=run.conversation.id, parts=parts, outcome=outcome
        )
        return FinalMessage(**run.stamp(), message=message)


async def _bounded(deadline: float, call: Awaitable[_T]) -> _T:
    """Await `call`, raising `TimeoutError` at the run's deadline (never around a `yield`)."""
    async with asyncio.timeout_at(deadline):
        return await call


def _ended(status: JobStatus | None) -> bool:
    return status is not None and status.state.terminal


def _job_failure(status: JobStatus) -> _Failure:
    """What to tell the user when the job `FAILED`: Omni's own error, as it gave it."""
    if status.error is None:
        return _Failure("job_failed", "Omni's AI could not answer the question.", retryable=False)
    reason = denial_of_status(status)
    if reason is not None:
        return _Failure("job_denied", denied_message(reason), retryable=False)
    code: ErrorType | ForeignErrorCode = ForeignErrorCode(status.error.code) if status.error.code else "job_failed"
    return _Failure(code, status.error.message, retryable=False)


def _http_failure(exc: OmniHTTPError) -> _Failure:
    """What to tell the user when Omni refused: its own `detail` (the client has kept the key out of it)."""
    if exc.status == 409:
        message = "An earlier question in this conversation is still being answered; please ask again in a moment."
        return _Failure("conversation_busy", message, retryable=True)
    reason = denial_of_refusal(exc)
    if reason is not None:
        return _Failure("job_denied", denied_message(reason), retryable=False)
    error_type = _ERROR_TYPES.get(exc.status, "omni_server_error" if exc.status >= 500 else "omni_error")
    retryable = exc.status == 429 or exc.status >= 500
    return _Failure(error_type, f"Omni refused the question (HTTP {exc.status}): {exc.detail}", retryable)
