"""`create_app`: the Starlette application of the HTTP service.

Starlette (not a framework on top of it) because the service needs little: routes, a lifespan, exception
handlers and streaming; request and answer models are pydantic, and the OpenAPI description is generated
from the same routes (`_openapi.py`). The app's lifespan runs the `Service`: the stores, the bridge, the
runner and the lease reaper live exactly as long as the app serves.

Besides the two APIs (`/v1` threads, `/api/v1/ai/jobs`) it serves `/health`, `/openapi.json`, the interactive
API docs at `/docs` and `/redoc` (`_docs.py`) and the web chat page at `/`, read from the package's
`static/index.html`; with a development key (no `BRIDGE_SERVICE_KEYS`, loopback or sandbox only) the key is put
into the page so it works with no configuration.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from omni_bridge import __version__
from omni_bridge.config import Settings
from omni_bridge.server._docs import docs_routes
from omni_bridge.server._envelope import ApiError, exception_handlers, ok
from omni_bridge.server._jobs_api import jobs_routes
from omni_bridge.server._metrics import metrics_routes
from omni_bridge.server._openapi import ApiRoute, Operation, openapi_document
from omni_bridge.server._service import Service
from omni_bridge.server._threads_api import threads_routes

__all__ = ["CONFIG_MARKER", "Health", "create_app"]

CONFIG_MARKER = "<!-- omni-bridge:config -->"
"""Where the page gets its configuration: replaced by `<script id="omni-bridge-config" type="application/json">`
holding `{"apiBase": "/v1", "devKey": <key or null>, "sandbox": <bool>, "frameNonce": <nonce>}` (before `</head>`
when missing)."""
FRAME_NONCE_MARKER = "'nonce-omni-bridge-frame-nonce'"
"""The page policy's source for the scripts of Omni's chart pages: a fresh nonce per response replaces it. A chart
page runs in a sandboxed `srcdoc` frame, which inherits the page's policy, so its scripts need a source there; the
page's own script stays pinned by hash."""

_DESCRIPTION = (
    "The omni-bridge HTTP service: an agent in front of Omni Analytics data, acting for each end user. "
    "Authenticate with `Authorization: Bearer <service key>` and name the end user with `X-Bridge-User`. "
    "Every `/v1` body is `{data, metadata, error}`; the AI Jobs API under `/api/v1/ai/jobs` answers as Omni does."
)


class Health(BaseModel):
    status: Literal["ok", "shutting_down"]
    version: str


def _page_template() -> str:
    return resources.files("omni_bridge.server").joinpath("static/index.html").read_text(encoding="utf-8")


def _page(service: Service) -> str:
    nonce = secrets.token_urlsafe(18)
    config = {
        "apiBase": "/v1",
        "devKey": service.dev_key,
        "sandbox": service.settings.uses_sandbox,
        "frameNonce": nonce,
    }
    # `<` escaped so nothing in the JSON can close the script element.
    script = (
        '<script id="omni-bridge-config" type="application/json">'
        + json.dumps(config).replace("<", "\\u003c")
        + "</script>"
    )
    template = _page_template().replace(FRAME_NONCE_MARKER, f"'nonce-{nonce}'", 1)
    if CONFIG_MARKER in template:
        return template.replace(CONFIG_MARKER, script, 1)
    return template.replace("</head>", script + "\n</head>", 1)


def create_app(settings: Settings, *, service: Service | None = None) -> Starlette:
    """The service's ASGI app; its lifespan starts and stops `service` (built from `settings` if not given).

    Raises:
        ConfigError: the settings do not allow the service to start (see `Service`).
    """
    service = service or Service(settings)
    document: dict[str, Any] = {}

    async def page(request: Request) -> Response:
        # The page may carry the development key: never cached.
        return HTMLResponse(_page(service), headers={"Cache-Control": "no-store"})

    async def health(request: Request) -> Response:
        if service.closing:
            raise ApiError(503, "unavailable", "shutting down")
        return ok(Health(status="ok", version=__version__))

    async def openapi(request: Request) -> Response:
        if not document:
            document.update(
                openapi_document(routes, title="omni-bridge", version=__version__, description=_DESCRIPTION)
            )
        return JSONResponse(document)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with service:
            yield

    routes: list[BaseRoute] = [
        ApiRoute(
            Operation(
                method="GET",
                path="/",
                operation_id="chatPage",
                summary="The web chat page",
                tag="page",
                media_type="text/html",
                secured=False,
            ),
            page,
        ),
        ApiRoute(
            Operation(
                method="GET",
                path="/health",
                operation_id="health",
                summary="Whether this worker takes requests",
                tag="service",
                data=Health,
                secured=False,
                errors=(503,),
            ),
            health,
        ),
        Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
        *docs_routes(),
        *threads_routes(service),
        *jobs_routes(service),
        *metrics_routes(service),  # GET /metrics, as BRIDGE_METRICS says
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=exception_handlers())
    app.state.service = service
    return app
