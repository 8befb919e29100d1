"""The body envelope of the `/v1` API, request parsing, and the error handling that keeps every failure a 4xx/5xx
JSON answer with a message.

Every `/v1` body is `{"data": ..., "metadata": {...}, "error": null | {"type", "message"}}`. Routes raise
`ApiError` for anything the caller did wrong; `read_json` turns a malformed body (bad JSON, wrong types,
unknown fields, over-long text) into a 400 that names the field, without echoing the input (it may hold what
the user typed); where a value has the wrong shape (`{"message": "…"}` where an object is wanted) the message
shows the right one, taken from the model's OpenAPI examples. The Omni-compatible paths under `/api/` answer
errors in Omni's shape, `{"detail", "status"}`, from the same `ApiError`, so the AI Jobs routes can raise it too.

Unexpected exceptions become a 500 with a fixed message; the traceback goes to the log, never to the client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from omni_bridge.exceptions import ErrorType

__all__ = [
    "MAX_BODY_BYTES",
    "ApiError",
    "ErrorBody",
    "ErrorEnvelope",
    "OmniErrorBody",
    "error_response",
    "exception_handlers",
    "model_examples",
    "ok",
    "read_json",
    "validation_message",
]

log = logging.getLogger("omni_bridge.server")

MAX_BODY_BYTES = 1_000_000
"""The largest request body accepted (413 past it): a question, a profile or a job fits many times over."""

_M = TypeVar("_M", bound=BaseModel)
_HTTP_TYPES: dict[int, ErrorType] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}


class ApiError(Exception):
    """An answer other than success: HTTP `status`, a machine-readable `type` and a message for people.

    Args:
        status: the HTTP status (4xx for the caller's mistakes).
        type: e.g. `invalid_request`, `not_found`, `response_active` (one of `omni_bridge.exceptions.ErrorType`).
        message: what went wrong and, where it helps, what to do; never a secret or the caller's input.
        headers: extra response headers (e.g. `WWW-Authenticate`).
    """

    def __init__(self, status: int, type: ErrorType, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.type!r}, {self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.status, self.type, self.message, self.headers))


def _rebuild(status: int, type: ErrorType, message: str, headers: dict[str, str]) -> ApiError:
    return ApiError(status, type, message, headers=headers)


class ErrorBody(BaseModel):
    """What went wrong."""

    model_config = ConfigDict(extra="forbid")

    type: str
    """Machine-readable kind: `invalid_request`, `unauthorized`, `not_found`, `response_active`, ..."""
    message: str
    """For people: what went wrong and what to do."""


class ErrorEnvelope(BaseModel):
    """The body of every `/v1` error."""

    model_config = ConfigDict(extra="forbid")

    data: None = None
    metadata: dict[str, JsonValue]
    error: ErrorBody


class OmniErrorBody(BaseModel):
    """The body of an error under `/api/`, as Omni answers it."""

    detail: str
    status: int


def _dump(data: object) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        return [_dump(item) for item in data]
    return data


def ok(data: object, *, status: int = 200, metadata: Mapping[str, JsonValue] | None = None) -> JSONResponse:
    """A success in the envelope; `data` may be a model, a list of models, or plain JSON."""
    body = {"data": _dump(data), "metadata": dict(metadata or {}), "error": None}
    return JSONResponse(body, status_code=status)


def error_response(
    request: Request, status: int, type: ErrorType, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An error in the shape of the path's API: Omni's `{detail, status}` under `/api/`, else the envelope."""
    if request.url.path.startswith("/api/"):
        body: dict[str, Any] = {"detail": message, "status": status}
    else:
        body = {"data": None, "metadata": {}, "error": {"type": type, "message": message}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


_SHAPES = {"model_type": "a JSON object", "dict_type": "a JSON object", "list_type": "a JSON array"}
"""pydantic's error types for a value of the wrong shape, and the shape wanted."""
_MAX_SAMPLE = 200


def model_examples(model: type[BaseModel]) -> list[Any]:
    """The `examples` a model declares in its `json_schema_extra` (none: `[]`); the OpenAPI document's too."""
    extra = model.model_config.get("json_schema_extra")
    examples = extra.get("examples") if isinstance(extra, dict) else None
    return list(examples) if isinstance(examples, list) else []


def _sample(example: Any, loc: Sequence[int | str]) -> Any:
    """The part of `example` at `loc`, or None where the example has none."""
    for part in loc:
        if isinstance(example, dict) and isinstance(part, str):
            example = example.get(part)
        elif isinstance(example, list) and isinstance(part, int):
            example = example[0] if example else None  # any item is shaped like the first
        else:
            return None
    return example


def _wrong_shape(error: Any, examples: Sequence[Any]) -> str | None:
    shape = _SHAPES.get(error["type"])
    if shape is None:
        return None
    for example in examples:
        sample = json.dumps(_sample(example, error["loc"]), ensure_ascii=False)
        if sample != "null" and len(sample) <= _MAX_SAMPLE:
            return f"must be {shape}, e.g. {sample}"
    return f"must be {shape}"


def validation_message(exc: ValidationError, *, what: str = "the body", examples: Sequence[Any] = ()) -> str:
    """One line per problem, naming the field; the input itself is never repeated.

    `examples`, valid values of the whole input, show the shape wanted where a value has the wrong one.
    """
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        if error["type"] == "json_invalid":
            return f"{what} is not valid JSON: {error['msg'].removeprefix('Invalid JSON: ')}"
        where = ".".join(str(part) for part in error["loc"]) or what
        problems.append(f"{where}: {_wrong_shape(error, examples) or error['msg']}")
    return f"{what} is not valid: " + "; ".join(problems[:10])


async def read_json(request: Request, model: type[_M]) -> _M:
    """Parse and validate the JSON body as `model`.

    Raises:
        ApiError: 415 not JSON, 413 too large, 400 bad JSON or a field that does not validate.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() not in ("application/json", ""):
        raise ApiError(415, "unsupported_media_type", "send the body as JSON with `Content-Type: application/json`")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, "payload_too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise ApiError(400, "invalid_request", "a JSON body is required")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", validation_message(exc, examples=model_examples(model))) from None


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(request, exc.status, exc.type, exc.message, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = _HTTP_TYPES.get(exc.status_code, "error")
    message = exc.detail if exc.status_code != 404 else f"no such path: {request.method} {request.url.path}"
    return error_response(request, exc.status_code, kind, message, exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, 500, "internal_error", "the service failed to answer; the error is in its log")


def exception_handlers() -> dict[Any, Any]:
    """The handlers `create_app` installs (Starlette's `exception_handlers=`)."""
    return {ApiError: _api_error, HTTPException: _http_error, Exception: _unexpected}
