"""The request and answer models of the thread API, and its id and header parameters.

Request models forbid unknown fields and bound every text, so a malformed body is a 400 naming the field
(`read_json`); answer models are the public face of the records (no owner, worker or lease details). The
same models give the OpenAPI schemas.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from omni_bridge.agent.events import ContentPart
from omni_bridge.server._auth import MAX_USER_ID_LENGTH, USER_HEADER
from omni_bridge.server._openapi import Param
from omni_bridge.stores import (
    Feedback,
    MessageRecord,
    ResponseError,
    ResponseRecord,
    ResponseStatus,
    ThreadRecord,
)
from omni_bridge.types import EngineName

__all__ = [
    "ID_PATTERN",
    "MAX_TEXT",
    "CreateThread",
    "FeedbackIn",
    "MessageIn",
    "MessageOut",
    "MessagePosted",
    "PostMessage",
    "ResponseOut",
    "ThreadCreated",
    "ThreadOut",
    "UserProfile",
    "id_param",
    "user_header",
]

MAX_TEXT = 20_000
"""The longest message accepted, in characters."""
ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageIn(_In):
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(_not_blank)]
    """What the end user asked."""


AttributeValue = str | int | float | bool | list[str] | None
"""A user attribute's value as Omni takes it."""


class UserProfile(_In):
    """The end user as Omni should know them: with a profile the embed user is created or updated first."""

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    groups: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=100)] | None = None
    user_attributes: Annotated[dict[str, AttributeValue], Field(max_length=100)] | None = None
    """Omni user attributes (e.g. `{"region": "West"}`): row-level security follows them. A value is a string, a
    number, a boolean, null or a list of strings, as Omni's generate-session takes them; anything else is refused
    here with a 422 that names it, rather than by Omni."""


_QUESTION: dict[str, JsonValue] = {"text": "What was revenue by region last quarter?"}
_THREAD_ID = "thr_0f8b7c4e2d1a4b6c9e3f5a7b8c9d0e1f"
_RESPONSE_ID = "4b2d8f8e-6c1a-4e5b-9d3c-2a1f0e9b8c7d"
_MESSAGE_ID = "msg_7a6b5c4d3e2f41a0b9c8d7e6f5a4b3c2"


class CreateThread(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"message": _QUESTION},
                {
                    "message": {"text": "Which products grew fastest this year?"},
                    "engine": "omni",
                    "title": "Product growth",
                    "user_profile": {"name": "Alice Adams", "groups": ["sales"], "user_attributes": {"region": "West"}},
                },
            ]
        }
    )

    message: MessageIn
    engine: EngineName | None = None
    """Who answers: `claude` (needs an Anthropic key on the service) or `omni`; default: the service's."""
    title: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    user_profile: UserProfile | None = None


class PostMessage(_In):
    model_config = ConfigDict(json_schema_extra={"examples": [{"message": {"text": "And the quarter before?"}}]})

    message: MessageIn


class FeedbackIn(_In):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"rating": "up"}, {"rating": "down", "comment": "West is missing."}]}
    )

    rating: Literal["up", "down"]
    comment: Annotated[str, Field(max_length=4000)] | None = None


class ThreadCreated(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"thread_id": _THREAD_ID, "response_id": _RESPONSE_ID, "user_message_id": _MESSAGE_ID}]
        }
    )

    thread_id: str
    response_id: str
    user_message_id: str


class MessagePosted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"response_id": _RESPONSE_ID, "user_message_id": _MESSAGE_ID}]}
    )

    response_id: str
    user_message_id: str


class ThreadOut(BaseModel):
    id: str
    title: str | None
    engine: EngineName
    current_response_id: str | None
    created_at: AwareDatetime
    updated_at: AwareDatetime

    @classmethod
    def of(cls, thread: ThreadRecord) -> ThreadOut:
        return cls.model_validate(thread.model_dump(include=set(cls.model_fields)))


class ResponseOut(BaseModel):
    id: str
    thread_id: str
    status: ResponseStatus
    parts: list[ContentPart]
    """The content so far (`thinking` included while it runs); the finished message's parts once it is over."""
    progress: str | None
    message_id: str | None
    """The assistant message it wrote, once finished."""
    error: ResponseError | None
    cancel_requested: bool
    created_at: AwareDatetime
    updated_at: AwareDatetime
    finished_at: AwareDatetime | None

    @classmethod
    def of(cls, response: ResponseRecord) -> ResponseOut:
        return cls.model_validate(response.model_dump(include=set(cls.model_fields)))


class MessageOut(BaseModel):
    id: str
    thread_id: str
    role: Literal["user", "assistant"]
    parts: list[ContentPart]
    outcome: Literal["completed", "errored", "canceled"] | None
    response_id: str | None
    created_at: AwareDatetime
    feedback: Feedback | None

    @classmethod
    def of(cls, message: MessageRecord) -> MessageOut:
        return cls.model_validate(message.model_dump(include=set(cls.model_fields)))


# --- parameters -------------------------------------------------------------------------------------------


def user_header() -> Param:
    return Param(
        USER_HEADER,
        "header",
        {"type": "string", "minLength": 1, "maxLength": MAX_USER_ID_LENGTH, "pattern": r"^[^\x00-\x1f\x7f]+$"},
        "The end user the request acts for: your own id for them.",
        required=True,
        example="alice",
    )


def id_param(name: str, what: str) -> Param:
    if name == "response_id":
        return Param(
            name, "path", {"type": "string", "format": "uuid"}, f"The {what}'s id (a UUID).", example=_RESPONSE_ID
        )
    example = _MESSAGE_ID if name == "message_id" else _THREAD_ID
    schema = {"type": "string", "pattern": ID_PATTERN, "maxLength": 128}
    return Param(name, "path", schema, f"The {what}'s id.", example=example)
