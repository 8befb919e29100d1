"""The OpenAPI 3.1 description of the service, generated from the routes themselves.

Each documented route is an `ApiRoute`: a Starlette `Route` carrying an `Operation` (its parameters, the
pydantic model of its body and of its answer, the errors it can give). `openapi_document` walks the app's
routes, so a path cannot be served without being described, and takes every schema from the models with
pydantic's `models_json_schema` (one shared `components/schemas`, `$ref`s in `#/components/schemas/{model}`
form). Plain `Route`s are still listed, with their methods only.

Examples come from the models too: a request model's `json_schema_extra={"examples": [...]}` becomes its
operation's named `examples` (what `/docs` puts in the editor), an answer model's first example the success
answer's `example` (in the envelope when the answer has one), and a `Param` carries its own `example`.

Why not FastAPI (issue 14 weighed it). FastAPI would generate this document and the validation, but the service
wants what FastAPI does differently, so a move is not mechanical: a malformed body is a 400 naming the field
without echoing the input (FastAPI answers 422 with the input in `detail`), errors are the `/v1` envelope or
Omni's `{detail, status}` by path, `read_json` bounds the body before parsing it, the header `X-Bridge-User`
and path ids are checked inside the handlers in a set order (401 before 400), and the event stream is its own
response. Matching all that means overriding FastAPI's request validation, error handlers and response
classes on every route, for a document this module already derives from the same models in some 200 lines.
The move stays a follow-up; the interactive docs (`_docs.py`) serve this document either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.routing import BaseRoute, Route

from omni_bridge.server._envelope import ErrorEnvelope, model_examples

__all__ = ["ApiRoute", "Operation", "Param", "openapi_document"]

_REASONS = {
    400: "The request is malformed: bad JSON, a field of the wrong type or length, an unknown field, a bad id or "
    "query value, or a missing `X-Bridge-User` header. The message names what is wrong.",
    401: "No valid service key in `Authorization: Bearer <key>`.",
    403: "Not allowed.",
    404: "No such record for this end user (another user's records do not exist for you), or no such path.",
    409: "A response of the thread is still queued or running.",
    413: "The body is larger than the service accepts.",
    415: "The body is not sent as `application/json`.",
    422: "The request cannot be processed as it stands.",
    429: "Too many answers in flight for this end user or tenant (`BRIDGE_MAX_RUNS_PER_USER`, "
    "`BRIDGE_MAX_RUNS_PER_TENANT`); nothing was stored. Ask again after `Retry-After` seconds.",
    500: "The service failed; the error is in its log.",
    503: "The service is shutting down or not ready.",
}


@dataclass(frozen=True)
class Param:
    """A path, query or header parameter."""

    name: str
    location: Literal["path", "query", "header"]
    schema: dict[str, Any]
    description: str
    required: bool = False
    example: Any = None
    """A value to try (`/docs` fills it in); every required parameter has one."""

    def describe(self) -> dict[str, Any]:
        described = {
            "name": self.name,
            "in": self.location,
            "required": self.required or self.location == "path",
            "description": self.description,
            "schema": self.schema,
        }
        if self.example is not None:
            described["example"] = self.example
        return described


@dataclass(frozen=True, kw_only=True)
class Operation:
    """What one route accepts and answers, for the OpenAPI description."""

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    description: str = ""
    params: tuple[Param, ...] = ()
    body: type[BaseModel] | None = None
    """The JSON body's model (validated with `extra="forbid"` models: unknown fields are refused)."""
    status: int = 200
    data: type[BaseModel] | None = None
    """The model of the answer (inside the envelope's `data` when `envelope`)."""
    many: bool = False
    """`data` is a list of the model."""
    media_type: str = "application/json"
    errors: tuple[int, ...] = ()
    """Error statuses besides the ones every operation has (400 and 401 when secured, 500)."""
    secured: bool = True
    envelope: bool = True
    """The answer is wrapped as `{data, metadata, error}`; `False` for bodies in another API's shape."""
    error_body: type[BaseModel] = ErrorEnvelope


class ApiRoute(Route):
    """A `Route` described by an `Operation`."""

    def __init__(self, operation: Operation, endpoint: Callable[..., Any]) -> None:
        super().__init__(operation.path, endpoint, methods=[operation.method], name=operation.operation_id)
        self.operation = operation


def _schemas(operations: Sequence[Operation]) -> tuple[dict[tuple[Any, str], Any], dict[str, Any]]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
    for op in operations:
        if op.body is not None:
            wanted[(op.body, "validation")] = None
        if op.data is not None:
            wanted[(op.data, "serialization")] = None
        wanted[(op.error_body, "serialization")] = None
    refs, defs = models_json_schema(list(wanted), ref_template="#/components/schemas/{model}")
    return {(model, mode): schema for (model, mode), schema in refs.items()}, defs.get("$defs", {})


def _answer_schema(op: Operation, refs: dict[tuple[Any, str], Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "null"} if op.data is None else refs[(op.data, "serialization")]
    if op.many:
        data = {"type": "array", "items": data}
    if not op.envelope:
        return data
    return {
        "type": "object",
        "required": ["data", "metadata", "error"],
        "properties": {
            "data": data,
            "metadata": {"type": "object", "additionalProperties": True},
            "error": {"type": "null"},
        },
    }


def _answer_example(op: Operation) -> Any:
    examples = model_examples(op.data) if op.data is not None else []
    if not examples:
        return None
    data = [examples[0]] if op.many else examples[0]
    return {"data": data, "metadata": {}, "error": None} if op.envelope else data


def _operation(op: Operation, refs: dict[tuple[Any, str], Any]) -> dict[str, Any]:
    described: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
    }
    if op.description:
        described["description"] = op.description
    if op.params:
        described["parameters"] = [param.describe() for param in op.params]
    if op.body is not None:
        body: dict[str, Any] = {"schema": refs[(op.body, "validation")]}
        if examples := model_examples(op.body):
            named = enumerate(examples, 1)
            body["examples"] = {f"example{n}": {"summary": f"Example {n}", "value": value} for n, value in named}
        described["requestBody"] = {"required": True, "content": {"application/json": body}}
    if op.media_type == "application/json":
        content: dict[str, Any] = {"application/json": {"schema": _answer_schema(op, refs)}}
        if (example := _answer_example(op)) is not None:
            content["application/json"]["example"] = example
    else:
        content = {op.media_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(op.status): {"description": op.summary, "content": content}}
    errors = set(op.errors) | {500}
    if op.secured:
        errors |= {400, 401}
        described["security"] = [{"serviceKey": []}]
    if op.body is not None:
        errors |= {400, 413, 415}
    error_schema = refs[(op.error_body, "serialization")]
    for status in sorted(errors):
        responses[str(status)] = {
            "description": _REASONS.get(status, "Error."),
            "content": {"application/json": {"schema": error_schema}},
        }
    described["responses"] = responses
    return described


def openapi_document(routes: Sequence[BaseRoute], *, title: str, version: str, description: str) -> dict[str, Any]:
    """The OpenAPI 3.1 description of `routes`."""
    operations = [route.operation for route in routes if isinstance(route, ApiRoute)]
    refs, defs = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if isinstance(route, ApiRoute):
            op = route.operation
            paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
        elif isinstance(route, Route) and route.include_in_schema:
            for method in sorted((route.methods or set()) - {"HEAD"}):
                paths.setdefault(route.path, {})[method.lower()] = {
                    "summary": route.name,
                    "responses": {"200": {"description": "See the service's documentation."}},
                }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {
                "serviceKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A service key from BRIDGE_SERVICE_KEYS; its name is your tenant.",
                }
            },
        },
    }
