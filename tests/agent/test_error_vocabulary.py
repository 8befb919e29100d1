"""One error vocabulary: every kind of error the bridge reports is one of `ErrorType`, and each exception names
its own kind (what a response that stops on it reports)."""

from __future__ import annotations

import ast
import pickle
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2
import pytest

import omni_bridge
from omni_bridge import exceptions
from omni_bridge.agent.engines.claude import _error_type as claude_error_type
from omni_bridge.exceptions import (
    ERROR_TYPES,
    ConfigError,
    ForeignErrorCode,
    IdentityError,
    McpConnectError,
    OmniBridgeError,
    OmniError,
    OmniHTTPError,
    SessionExpired,
    ToolTimeout,
    WebhookVerificationError,
    is_error_type,
)
from omni_bridge.testing import error_reply

PACKAGE = Path(omni_bridge.__file__).parent
_TABLES = {"_ERROR_TYPES", "_KINDS", "_HTTP_TYPES", "_RETRYABLE_FRAMES"}
"""Module-level tables whose values are error kinds (the omni engine's, the jobs API's, the envelope's, ...)."""


def _subclasses(cls: type[OmniBridgeError]) -> Iterator[type[OmniBridgeError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


ALL_ERRORS: list[type[OmniBridgeError]] = [OmniBridgeError, *_subclasses(OmniBridgeError)]


def _strings(node: ast.AST | None) -> list[str]:
    return [node.value] if isinstance(node, ast.Constant) and isinstance(node.value, str) else []


def _kinds_in(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every error kind spelled out in a module: `error_type=`, `ResponseError(type=)`, `ApiError(status, kind)`,
    the engines' failures, the console's `failure` tuples, and the values of the kind tables."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            for keyword in node.keywords:
                if keyword.arg == "error_type" or (keyword.arg == "type" and name == "ResponseError"):
                    yield from ((node.lineno, s) for s in _strings(keyword.value))
            if name == "ApiError" and len(node.args) >= 2:
                yield from ((node.lineno, s) for s in _strings(node.args[1]))
            if name == "_Failure" and node.args:
                yield from ((node.lineno, s) for s in _strings(node.args[0]))
            if name == "_StreamBroken" and len(node.args) >= 2:
                yield from ((node.lineno, s) for s in _strings(node.args[1]))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {t.id for t in targets if isinstance(t, ast.Name)}
            value = node.value
            if names & _TABLES and value is not None:
                for inner in ast.walk(value):
                    if isinstance(inner, ast.Dict):
                        for item in inner.values:
                            yield from ((inner.lineno, s) for s in _strings(item))
                    elif isinstance(inner, ast.Set):
                        for item in inner.elts:
                            yield from ((inner.lineno, s) for s in _strings(item))
            if "failure" in names and isinstance(value, ast.Tuple) and value.elts:
                yield from ((node.lineno, s) for s in _strings(value.elts[0]))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs: list[tuple[ast.arg, ast.expr | None]] = [
                *zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
            ]
            pairs += [(arg, default) for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
            for arg, default in pairs:
                if arg.arg == "error_type":
                    yield from ((node.lineno, s) for s in _strings(default))


def _spelled_kinds() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, kind in _kinds_in(ast.parse(path.read_text(encoding="utf-8"))):
            found.setdefault(kind, []).append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    return found


def test_every_error_kind_the_package_spells_out_is_in_the_vocabulary() -> None:
    found = _spelled_kinds()
    # The scan sees every producer: the engines, the Bridge's default, the runner, the stores, the console, the API.
    assert {"stream_interrupted", "max_turns", "conversation_busy", "timeout", "overloaded_error"} <= found.keys()
    assert {"internal_error", "worker_shutdown", "worker_lost", "canceled"} <= found.keys()
    assert {"invalid_request", "not_found", "response_active", "unauthorized", "payload_too_large"} <= found.keys()
    unknown = {kind: where for kind, where in found.items() if kind not in ERROR_TYPES}
    assert unknown == {}


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda cls: cls.__name__)
def test_each_exception_names_one_kind_of_the_vocabulary(cls: type[OmniBridgeError]) -> None:
    assert cls.error_type in ERROR_TYPES
    assert isinstance(cls.retryable, bool)


def test_the_exceptions_keep_the_kinds_responses_reported_for_them() -> None:
    kinds = {cls: (cls.error_type, cls.retryable) for cls in ALL_ERRORS}
    assert kinds[OmniBridgeError] == ("error", False)
    assert kinds[ConfigError] == ("configuration_error", False)
    assert kinds[IdentityError] == ("identity_error", False)
    assert kinds[WebhookVerificationError] == ("error", False)
    for cls in (OmniError, OmniHTTPError, McpConnectError, SessionExpired, ToolTimeout):
        assert kinds[cls] == ("omni_unavailable", True)


def test_an_error_keeps_its_kind_across_a_process_boundary() -> None:
    error = pickle.loads(pickle.dumps(OmniHTTPError(503, "down", method="GET", path="/api/v1/ai/jobs")))
    assert (error.error_type, error.retryable, error.status) == ("omni_unavailable", True, 503)


def test_the_errors_that_are_never_raised_are_gone() -> None:
    assert not {"ModelAPIError", "RunCancelled"} & set(dir(exceptions))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 429, 500, 529])
def test_the_messages_api_error_types_are_in_the_vocabulary(status: int) -> None:
    reply = error_reply(status)
    request = httpx2.Request("POST", "https://api.anthropic.test/v1/messages")
    error = anthropic.APIStatusError(
        reply.message, response=httpx2.Response(status, request=request), body=reply.body("req_1")
    )
    kind = claude_error_type(error)
    assert kind == reply.error_type and is_error_type(kind)


def test_a_messages_api_error_type_newer_than_the_vocabulary_is_passed_on_as_it_came() -> None:
    request = httpx2.Request("POST", "https://api.anthropic.test/v1/messages")
    body = {"type": "error", "error": {"type": "brand_new_error", "message": "?"}}
    error = anthropic.APIStatusError("?", response=httpx2.Response(418, request=request), body=body)
    kind = claude_error_type(error)
    assert kind == ForeignErrorCode("brand_new_error") and not is_error_type(kind)
