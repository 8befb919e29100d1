"""Reading a sandbox REST request: JSON bodies checked against Omni's fields, query parameters, who acts.

Malformed JSON, bad fields and wrong types become 400s that say what is wrong, so no input reaches a 500.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.requests import Request

from omni_bridge._json_body import InvalidJson, load_json
from omni_bridge.sandbox._caller import Caller
from omni_bridge.sandbox._directory import SandboxUser
from omni_bridge.sandbox._errors import SandboxHTTPError
from omni_bridge.sandbox._job_rules import Attachment, check_attachments

if TYPE_CHECKING:  # the sandbox imports the REST routes to build its app
    from omni_bridge.sandbox._app import Sandbox

__all__ = [
    "CreateJobBody",
    "FaultsBody",
    "GenerateSessionBody",
    "PickTopicBody",
    "RunQueryBody",
    "SearchDocsBody",
    "acting_user",
    "int_param",
    "parse_body",
    "require_org_key",
]

_M = TypeVar("_M", bound=BaseModel)


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
    attachments: list[Attachment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> CreateJobBody:
        if self.webhookUrl is not None and not self.webhookSigningSecret:
            raise ValueError("webhookSigningSecret is required when webhookUrl is set")
        if self.progressWebhookEnabled and self.webhookUrl is None:
            raise ValueError("progressWebhookEnabled needs webhookUrl")
        check_attachments(self.attachments, self.prompt)
        return self


class GenerateSessionBody(_Body):
    externalId: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1, max_length=255)
    contentPath: str = "/"
    email: str | None = Field(None, max_length=320)
    entity: str | None = Field(None, max_length=64)
    groups: list[str] = Field(default_factory=list, max_length=100)
    userAttributes: dict[str, str | list[str] | int | float | bool | None] = Field(default_factory=dict)
    connectionRoles: dict[str, str] | None = None
    modelRoles: dict[str, str] | None = None


class SearchDocsBody(_Body):
    question: str = Field(min_length=1, max_length=2000)


class RunQueryBody(_Body):
    query: dict[str, Any]
    userId: uuid.UUID | None = None
    resultType: Literal["json", "csv", "xlsx"] | None = None
    branchId: uuid.UUID | None = None
    formatResults: bool | None = None
    planOnly: bool | None = None
    cache: str | None = Field(None, max_length=64)


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
    query_run_status: int | None = None
    seed: int | None = None


async def parse_body(request: Request, model: type[_M]) -> _M:
    """The request's JSON body (an empty body reads as `{}`) as `model`, or a 400 naming what is wrong."""
    raw = await request.body()
    try:
        data = load_json(raw or b"{}")
    except InvalidJson as exc:
        raise SandboxHTTPError(400, f"Bad Request: {exc}") from None
    if not isinstance(data, dict):
        raise SandboxHTTPError(400, "Bad Request: the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SandboxHTTPError(400, _validation_detail(exc)) from None


def int_param(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    """An integer query parameter, clamped to `low..high`; a non-integer is a 400."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SandboxHTTPError(400, f"Bad Request: {name} must be an integer, got {raw[:32]!r}") from None
    return min(max(value, low), high)


def acting_user(sandbox: Sandbox, request: Request, caller: Caller) -> SandboxUser:
    """`?userId=`: an org key may act for anyone; a personal token only for itself (403)."""
    return sandbox.directory.act_as(caller.key, request.query_params.get("userId") or None)


def require_org_key(caller: Caller, what: str) -> None:
    """A 403 unless the request came with an organization API key."""
    if not caller.is_org_key:
        raise SandboxHTTPError(403, f"Forbidden: {what} requires an organization API key")


def _validation_detail(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"])
        message = "Required" if error["type"] == "missing" else error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "Bad Request: " + "; ".join(parts)
