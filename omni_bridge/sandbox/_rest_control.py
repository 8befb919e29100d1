"""The sandbox's own routes: control knobs and counters for tests (`/sandbox/*`), and the key-less pages.

The control routes check the key only (no injected fault or rate limit): the knobs that make the API fail must
never lock out the route that turns them off, nor the counters a test reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from omni_bridge.sandbox._caller import Caller
from omni_bridge.sandbox._errors import SandboxHTTPError
from omni_bridge.sandbox._rest_input import FaultsBody, parse_body, require_org_key

if TYPE_CHECKING:
    from omni_bridge.sandbox._app import Sandbox

__all__ = ["chat_page", "doc_page", "drop_sessions", "get_stats", "health", "set_faults", "webhooks"]


async def get_stats(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    return JSONResponse(sandbox.stats.snapshot())


async def set_faults(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    require_org_key(caller, "changing sandbox faults")
    body = await parse_body(request, FaultsBody)
    try:
        sandbox.set_faults(**body.model_dump(exclude_unset=True))
    except ValueError as exc:
        raise SandboxHTTPError(400, f"Bad Request: {exc}") from None
    return JSONResponse(sandbox.fault_settings())


async def drop_sessions(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    require_org_key(caller, "dropping MCP sessions")
    return JSONResponse({"dropped": sandbox.drop_sessions()})


async def webhooks(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    deliveries = [
        {"url": d.url, "event": d.event, "statusCode": d.status_code, "error": d.error}
        for d in sandbox.jobs.webhook_deliveries
    ]
    return JSONResponse({"deliveries": deliveries})


# --- public pages (no key) -----------------------------------------------------------------------------


async def health(sandbox: Sandbox, request: Request) -> Response:
    return JSONResponse({"status": "ok", "service": "omni-bridge sandbox"})


async def doc_page(sandbox: Sandbox, request: Request) -> Response:
    page = sandbox.docs.page(request.path_params["slug"])
    if page is None:
        return PlainTextResponse("Not Found", status_code=404)
    return PlainTextResponse(page.body, media_type="text/markdown; charset=utf-8")


async def chat_page(sandbox: Sandbox, request: Request) -> Response:
    return PlainTextResponse(
        "omni-bridge sandbox: in Omni this link opens the conversation in Omni's chat.\n"
        f"Conversation: {request.path_params['conversation_id']}\n"
    )
