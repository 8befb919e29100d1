"""The sandbox's REST API: the table of routes, and the admission every `/api/*` route passes.

Every `/api/*` route passes the same admission as MCP (faults, key, rate limit); its handler turns malformed
JSON, bad fields and wrong types into 400s that say what is wrong, so no input reaches a 500. Errors are Omni's
`{detail, status}`. The sandbox's own control routes (`/sandbox/*`) check the key only: no injected fault or
rate limit ever stops a test from reading the counters or turning the faults off.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omni_bridge.sandbox._caller import Caller, caller_from_headers
from omni_bridge.sandbox._errors import SandboxHTTPError, error_response
from omni_bridge.sandbox._gate import admit, check_faults
from omni_bridge.sandbox._rest_ai import create_job, job_cancel, job_result, job_status, pick_topic, search_docs
from omni_bridge.sandbox._rest_catalog import get_topic, list_models, list_topics
from omni_bridge.sandbox._rest_control import (
    chat_page,
    doc_page,
    drop_sessions,
    get_stats,
    health,
    set_faults,
    webhooks,
)
from omni_bridge.sandbox._rest_conversations import get_conversation, list_conversations
from omni_bridge.sandbox._rest_embed_users import generate_session, scim_get, scim_list, v0_embed_users
from omni_bridge.sandbox._rest_query import run_query_route

if TYPE_CHECKING:  # the sandbox imports this module to build its routes
    from omni_bridge.sandbox._app import Sandbox

__all__ = ["rest_routes"]

Handler = Callable[["Sandbox", Request, Caller], Awaitable[Response]]
"""A route behind the admission: it gets the sandbox, the request and who sent it."""
Page = Callable[["Sandbox", Request], Awaitable[Response]]
"""A public page: no key needed."""
Endpoint = Callable[[Request], Awaitable[Response]]

_PAGES: tuple[tuple[str, Page], ...] = (
    ("/health", health),
    ("/docs/{slug}", doc_page),
    ("/chat/{conversation_id}", chat_page),
)
_API: tuple[tuple[str, Handler, str], ...] = (
    ("/api/v0/users/embed", v0_embed_users, "GET"),
    ("/api/v1/embed/sso/generate-session", generate_session, "POST"),
    ("/api/unstable/embed/sso/generate-session", generate_session, "POST"),
    ("/api/v1/models", list_models, "GET"),
    ("/api/v1/models/{model_id}/topic", list_topics, "GET"),
    ("/api/v1/models/{model_id}/topic/{topic_name}", get_topic, "GET"),
    ("/api/v1/ai/jobs", create_job, "POST"),
    ("/api/v1/ai/jobs/{job_id}", job_status, "GET"),
    ("/api/v1/ai/jobs/{job_id}/cancel", job_cancel, "POST"),
    ("/api/v1/ai/jobs/{job_id}/result", job_result, "GET"),
    ("/api/v1/ai/conversations", list_conversations, "GET"),
    ("/api/v1/ai/conversations/{conversation_id}", get_conversation, "GET"),
    ("/api/v1/ai/search-omni-docs", search_docs, "POST"),
    ("/api/v1/ai/pick-topic", pick_topic, "POST"),
    ("/api/v1/query/run", run_query_route, "POST"),
)
_CONTROL: tuple[tuple[str, Handler, str], ...] = (
    ("/sandbox/stats", get_stats, "GET"),
    ("/sandbox/faults", set_faults, "POST"),
    ("/sandbox/drop-sessions", drop_sessions, "POST"),
    ("/sandbox/webhooks", webhooks, "GET"),
)
_SCIM_USERS = ("users", "Users")
"""Omni's docs spell the SCIM route lower-case, the SCIM spec `/Users`; Omni's routes are case-sensitive."""


def rest_routes(sandbox: Sandbox) -> list[Route]:
    """The REST routes, bound to one sandbox."""
    routes = [Route(path, _page(sandbox, page), methods=["GET"]) for path, page in _PAGES]
    routes += [Route(path, _endpoint(sandbox, handler), methods=[method]) for path, handler, method in _API]
    routes += [
        Route(path, _endpoint(sandbox, handler, control=True), methods=[method]) for path, handler, method in _CONTROL
    ]
    for users in _SCIM_USERS:
        routes.append(Route(f"/api/scim/v2/embed/{users}", _endpoint(sandbox, scim_list), methods=["GET"]))
        user = f"/api/scim/v2/embed/{users}/{{user_id}}"
        routes.append(Route(user, _endpoint(sandbox, scim_get), methods=["GET", "DELETE"]))
    return routes


def _endpoint(sandbox: Sandbox, handler: Handler, *, control: bool = False) -> Endpoint:
    """`handler` behind the admission of Omni's API: injected faults, the key, the rate limit.

    A control route (`control=True`: the `/sandbox/` routes) checks the key only: the knobs that make the
    API fail must never lock out the route that turns them off, nor the counters a test reads.
    """

    async def run(request: Request) -> Response:
        sandbox.stats.count(f"rest.{handler.__name__}")
        try:
            if control:
                caller = caller_from_headers(sandbox.directory, request.headers)
            else:
                failure = await check_faults(sandbox.faults)
                if failure is not None:
                    raise failure
                caller = admit(sandbox.directory, sandbox.limiter, sandbox.faults, request.headers)
            return await handler(sandbox, request, caller)
        except SandboxHTTPError as exc:
            return error_response(exc.status, exc.detail, exc.headers)

    return run


def _page(sandbox: Sandbox, page: Page) -> Endpoint:
    async def run(request: Request) -> Response:
        return await page(sandbox, request)

    return run
