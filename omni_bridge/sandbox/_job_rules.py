"""The rules an AI job meets before it runs: the AI credit limit, attachments, and which part of a prompt is asked.

**Credit limit.** Omni denies AI work once an organization is over its AI credit limit; the job then ends with the
terminal webhook `job.denied` and a `reason`. Omni documents the webhook, not the request: its job states are
unchanged (QUEUED … CANCELLED) and a refusal is not a state. So the sandbox's guess is that a denied job is
*accepted* (201) and then ends FAILED, with `error.code = "AI_CREDIT_LIMIT_EXCEEDED"` and the `reason` in the
error and the webhook, never a 4xx at create (a 4xx could not have a webhook). `CreditLimit(jobs=N, per="org")`
lets N jobs run in the organization (or per user with `per="user"`); counting every job that started executing,
kept across restarts with the jobs.

**Attachments.** Omni's newer spec accepts up to 5 attachments (`{data: base64, mimeType, name?}`; PNG, JPEG,
WebP or PDF; images up to 3 MB each; about 15 MB in all with the prompt; a shared 50,000-token budget). The
sandbox checks the shape and the byte budgets (the token budget is not modelled) and cannot read images or
PDFs: each attachment shows in the result as a `failure` action (no `timestamp`, as Omni's live results have
been seen to carry), and the text prompt is answered as usual.

**Branches.** A job's `branchId` must be a branch of its `modelId` (else 404, as at Omni). Each sandbox model
has one branch, `demo_branch_id(model_id)`; the job runs as on the model itself (the sandbox makes no model
edits) and its status echoes the `branchId`.

**The question in a prompt.** The sandbox's query step is rules, not a language model: it reads only the
prompt's last paragraph (after the last blank line). Earlier paragraphs are context (e.g. the questions and
answers a client carries into a new conversation) that Omni's AI would read and the rules would misread.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ATTACHMENT_TYPES",
    "MAX_ATTACHMENTS",
    "MAX_ATTACHMENTS_BYTES",
    "MAX_IMAGE_BYTES",
    "Attachment",
    "CreditLimit",
    "attachment_failures",
    "check_attachments",
    "demo_branch_id",
    "question_of",
]

ATTACHMENT_TYPES = ("image/png", "image/jpeg", "image/webp", "application/pdf")
MAX_ATTACHMENTS = 5
MAX_IMAGE_BYTES = 3 * 1024 * 1024
"""An image attachment, decoded, at most (Omni's newer spec: 3 MB)."""
MAX_ATTACHMENTS_BYTES = 15 * 1024 * 1024
"""All attachments decoded plus the prompt's bytes, at most (Omni's newer spec: about 15 MB)."""
DENIED_CODE = "AI_CREDIT_LIMIT_EXCEEDED"
_BRANCHES = uuid.UUID("5b1d7c3a-2f4e-4a6b-8c9d-0e1f2a3b4c5d")


def demo_branch_id(model_id: str) -> str:
    """The one branch each sandbox model has (`branchId` of a job must be a branch of its `modelId`)."""
    return str(uuid.uuid5(_BRANCHES, f"branch:{model_id.lower()}"))


class Attachment(BaseModel):
    """One attachment of `POST /api/v1/ai/jobs`; `data` is base64 and never appears in a repr or an error."""

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)

    data: str = Field(repr=False, min_length=1)
    mimeType: Literal["image/png", "image/jpeg", "image/webp", "application/pdf"]
    name: str | None = Field(None, max_length=255)

    @field_validator("data")
    @classmethod
    def _is_base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be base64") from None
        return value

    @property
    def size(self) -> int:
        """The decoded size in bytes."""
        padding = len(self.data) - len(self.data.rstrip("="))
        return len(self.data) * 3 // 4 - padding

    def summary(self, index: int) -> dict[str, Any]:
        """What a job keeps of it: name, type and size, never the bytes."""
        return {"name": self.name or f"attachment-{index + 1}", "mimeType": self.mimeType, "size": self.size}


def check_attachments(attachments: list[Attachment], prompt: str) -> None:
    """Raise `ValueError` naming the attachment and the limit when the attachments are over Omni's budgets."""
    if len(attachments) > MAX_ATTACHMENTS:
        raise ValueError(f"attachments: at most {MAX_ATTACHMENTS} attachments, got {len(attachments)}")
    total = len(prompt.encode())
    for index, attachment in enumerate(attachments):
        if attachment.mimeType.startswith("image/") and attachment.size > MAX_IMAGE_BYTES:
            raise ValueError(
                f"attachments.{index}: an image may be at most {MAX_IMAGE_BYTES} bytes, got {attachment.size}"
            )
        total += attachment.size
    if total > MAX_ATTACHMENTS_BYTES:
        raise ValueError(f"attachments: at most {MAX_ATTACHMENTS_BYTES} bytes in all with the prompt, got {total}")


def attachment_failures(attachments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A `failure` action (no timestamp) per attachment the sandbox could not read."""
    return [
        {
            "type": "failure",
            "message": f"Could not read attachment {a['name']!r} ({a['mimeType']}): the sandbox does not read "
            "images or PDFs; the question was answered from its text",
        }
        for a in attachments
    ]


def question_of(prompt: str) -> str:
    """The paragraph of `prompt` the sandbox's rules answer: its last one."""
    paragraphs = [p for p in prompt.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return paragraphs[-1].strip() if paragraphs else prompt


@dataclass(frozen=True, slots=True)
class CreditLimit:
    """How many AI jobs may run before new ones are denied: in the whole organization, or per user."""

    jobs: int
    per: Literal["org", "user"] = "org"

    def __post_init__(self) -> None:
        if self.jobs < 0:
            raise ValueError("an AI credit limit must not be negative")
        if self.per not in ("org", "user"):
            raise ValueError("an AI credit limit is per 'org' or per 'user'")

    def reason(self) -> str:
        """The `reason` of a denied job."""
        whose = "organization" if self.per == "org" else "user"
        return f"The {whose} is over its AI credit limit ({self.jobs} AI jobs)"
