"""The AI Jobs calls of `OmniRestClient`: ask Omni's own agent a question, poll it, fetch the result, cancel.

Every call may act for an end user with `?userId=` (an organization key may act for anyone). Only `create_job`
is not idempotent: it is never sent twice after a failure that may have come after Omni created the job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import SecretStr

from omni_bridge.tools._rest_models import JobCancelled, JobCreated, JobResult, JobStatus
from omni_bridge.tools._rest_transport import RestTransport, parse_answer, path_segment

__all__ = ["JobCalls"]


class JobCalls(RestTransport):
    """Omni's AI Jobs API (`/api/v1/ai/jobs`)."""

    async def create_job(
        self,
        *,
        model_id: str,
        prompt: str,
        user_id: str | None = None,
        topic_name: str | None = None,
        conversation_id: str | None = None,
        branch_id: str | None = None,
        attachments: Sequence[Mapping[str, Any]] = (),
        webhook_url: str | None = None,
        webhook_signing_secret: str | SecretStr | None = None,
        webhook_metadata: Mapping[str, Any] | None = None,
        progress_webhook: bool = False,
    ) -> JobCreated:
        """Submit a question to Omni's own agent, acting for `user_id` (`POST /api/v1/ai/jobs?userId=`).

        Never sent twice: after a connection failure or a 5xx that may have come after the job was created, the
        error is raised instead of retried (only 429 and 503, which mean Omni refused it, are retried).

        Args:
            model_id: the shared model (UUID) to ask.
            prompt: the question.
            user_id: the Omni user to act for (needs an organization key); `None` acts as the key's owner.
            topic_name: pin a topic; `None` lets the AI pick one.
            conversation_id: continue a conversation (one active job per conversation, else 404 if Omni does
                not know it, 409 while a job of it is active).
            branch_id: a branch of the model to work on (its edits go there).
            attachments: images or PDFs, each `{"data": <base64>, "mimeType": ..., "name"?: ...}`, sent as given.
            webhook_url: where Omni POSTs the terminal event (signed, see `verify_webhook`).
            webhook_signing_secret: the secret Omni signs webhooks with; required with `webhook_url`.
            webhook_metadata: returned unchanged in webhook payloads.
            progress_webhook: also POST progress events (best effort) to `webhook_url`.

        Raises:
            ValueError: a webhook option without `webhook_url`, or a `webhook_url` without a secret.
            OmniHTTPError: Omni refused (400 bad input, 403, 404 model or topic, 409 conversation busy).
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        if webhook_url is not None and not webhook_signing_secret:
            raise ValueError("webhook_signing_secret is required with webhook_url")
        if webhook_url is None and (progress_webhook or webhook_metadata is not None):
            raise ValueError("progress_webhook and webhook_metadata need webhook_url")
        body: dict[str, Any] = {"modelId": model_id, "prompt": prompt}
        if topic_name is not None:
            body["topicName"] = topic_name
        if conversation_id is not None:
            body["conversationId"] = conversation_id
        if branch_id is not None:
            body["branchId"] = branch_id
        if attachments:
            body["attachments"] = [dict(a) for a in attachments]
        if webhook_url is not None:
            secret = webhook_signing_secret
            body["webhookUrl"] = webhook_url
            body["webhookSigningSecret"] = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
            body["progressWebhookEnabled"] = progress_webhook
            if webhook_metadata is not None:
                body["webhookMetadata"] = dict(webhook_metadata)
        path = "/api/v1/ai/jobs"
        data = await self._request("POST", path, params=_user(user_id), json_body=body, idempotent=False)
        return parse_answer(JobCreated, data, "POST", path)

    async def get_job(self, job_id: str, *, user_id: str | None = None) -> JobStatus:
        """The job's state, progress, summary or error (poll every 2-5 s, or use a webhook).

        Raises:
            OmniHTTPError: Omni refused the request (404: no such job for this caller).
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        path = f"/api/v1/ai/jobs/{path_segment(job_id)}"
        return parse_answer(JobStatus, await self._request("GET", path, params=_user(user_id)), "GET", path)

    async def get_job_result(self, job_id: str, *, user_id: str | None = None) -> JobResult:
        """The full result of a `COMPLETE` job: answer, topic and each action with its CSV rows.

        Raises:
            OmniHTTPError: 404 when the job is not `COMPLETE` (or older than 14 days), or another refusal.
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        path = f"/api/v1/ai/jobs/{path_segment(job_id)}/result"
        return parse_answer(JobResult, await self._request("GET", path, params=_user(user_id)), "GET", path)

    async def cancel_job(self, job_id: str, *, user_id: str | None = None) -> JobCancelled:
        """Ask Omni to cancel a job; a terminal job answers with its state unchanged (idempotent).

        Raises:
            OmniHTTPError: 400 for a `DELIVERING` job, 403 for someone else's job, 404 no such job.
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        path = f"/api/v1/ai/jobs/{path_segment(job_id)}/cancel"
        data = await self._request("POST", path, params=_user(user_id), idempotent=True)
        return parse_answer(JobCancelled, data, "POST", path)


def _user(user_id: str | None) -> dict[str, str] | None:
    return {"userId": user_id} if user_id is not None else None
