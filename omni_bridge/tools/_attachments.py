"""Attachments of an AI job, as Omni's newer spec takes them, checked before they are sent or accepted.

Omni accepts up to 5 attachments on `POST /api/v1/ai/jobs`, each `{data: <base64>, mimeType, name?}` with
`mimeType` one of PNG, JPEG, WebP or PDF; images up to 3 MB each, about 15 MB in all together with the prompt
(and a 50,000-token budget shared with the prompt, which depends on Omni's model and is not checked here).
The bridge's Omni-compatible API refuses anything else with a 400 naming the attachment, so a client learns of
it at once rather than from a job that fails later; `data` never appears in a repr or an error.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ATTACHMENT_TYPES",
    "MAX_ATTACHMENTS",
    "MAX_ATTACHMENTS_BYTES",
    "MAX_IMAGE_BYTES",
    "JobAttachment",
    "check_attachments",
]

ATTACHMENT_TYPES = ("image/png", "image/jpeg", "image/webp", "application/pdf")
MAX_ATTACHMENTS = 5
MAX_IMAGE_BYTES = 3 * 1024 * 1024
"""One image, decoded, at most."""
MAX_ATTACHMENTS_BYTES = 15 * 1024 * 1024
"""All attachments, decoded, plus the prompt's UTF-8 bytes, at most."""


class JobAttachment(BaseModel):
    """One attachment: base64 `data`, its `mimeType`, an optional `name`."""

    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    data: str = Field(min_length=1, repr=False)
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
        """Decoded bytes."""
        return len(self.data) * 3 // 4 - (len(self.data) - len(self.data.rstrip("=")))

    def body(self) -> dict[str, Any]:
        """As Omni takes it."""
        return self.model_dump(exclude_none=True)


def check_attachments(attachments: Sequence[JobAttachment], prompt: str) -> None:
    """Raise `ValueError` naming the attachment and the limit when they are over Omni's budgets."""
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
