"""Interactive API docs: Swagger UI at `/docs`, ReDoc at `/redoc`, both over the service's own `/openapi.json`.

Every asset is served by the service itself (no CDN: the docs work offline and on a locked-down network). The
Swagger UI and ReDoc bundles come from the `fastapi-offline` package, a small, maintained PyPI package that
exists to ship exactly these files (Swagger UI 5, which reads OpenAPI 3.1, and ReDoc 2); its files are found
with `find_spec`, without importing it (its import pulls FastAPI in, which the service does not use). The two
pages and their start scripts are the package's own `static/docs.html`, `docs.js`, `redoc.html`, `redoc.js`.

The pages answer with a strict Content-Security-Policy: scripts from `'self'` only (the start scripts are
files, not inline), requests to `'self'` only, no frames, forms or plugins. Styles allow `'unsafe-inline'`, as
the chat page's policy does: ReDoc's styled-components write `<style>` elements at run time; and workers may
start from `blob:`, which ReDoc's search worker does (its code is the bundle's own, itself from `'self'`).
ReDoc's sidebar also shows a Redocly logo from Redocly's CDN: the policy refuses it and the logo hides itself.
Viewing the docs needs no key; trying a request needs the service key in "Authorize" (the `serviceKey` bearer
scheme), which Swagger UI keeps for the tab only.
"""

from __future__ import annotations

import functools
import importlib.util
from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from omni_bridge.server._envelope import ApiError

__all__ = ["DOCS_POLICY", "docs_routes"]

DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-src 'none'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The policy of `/docs`, `/redoc` and their assets."""

_BUNDLE_PACKAGE = "fastapi_offline"
_MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}
_ASSETS = {
    # name under /docs/assets/ -> (where it is, its file name)
    "swagger-ui-bundle.js": (_BUNDLE_PACKAGE, "swagger-ui-bundle.js"),
    "swagger-ui.css": (_BUNDLE_PACKAGE, "swagger-ui.css"),
    "redoc.standalone.js": (_BUNDLE_PACKAGE, "redoc.standalone.js"),
    "favicon.png": (_BUNDLE_PACKAGE, "favicon.png"),
    "docs.js": ("omni_bridge", "docs.js"),
    "redoc.js": ("omni_bridge", "redoc.js"),
}
_HEADERS = {"Content-Security-Policy": DOCS_POLICY, "X-Content-Type-Options": "nosniff"}


def _bundle_dir() -> Path:
    spec = importlib.util.find_spec(_BUNDLE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ApiError(503, "unavailable", "the API docs' files are not installed: `pip install fastapi-offline`")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@functools.cache
def _read(source: str, file_name: str) -> bytes:
    if source == "omni_bridge":
        return resources.files("omni_bridge.server").joinpath("static", file_name).read_bytes()
    return (_bundle_dir() / file_name).read_bytes()


async def _swagger(request: Request) -> Response:
    return HTMLResponse(_read("omni_bridge", "docs.html"), headers=_HEADERS)


async def _redoc(request: Request) -> Response:
    return HTMLResponse(_read("omni_bridge", "redoc.html"), headers=_HEADERS)


async def _asset(request: Request) -> Response:
    name = str(request.path_params["name"])
    if name not in _ASSETS:
        raise ApiError(404, "not_found", f"no such path: {request.method} {request.url.path}")
    headers = _HEADERS | {"Cache-Control": "public, max-age=86400"}
    return Response(_read(*_ASSETS[name]), media_type=_MEDIA_TYPES[Path(name).suffix], headers=headers)


def docs_routes() -> list[BaseRoute]:
    """`/docs`, `/redoc` and `/docs/assets/{name}`; not in the OpenAPI document (they are not the API)."""
    return [
        Route("/docs", _swagger, methods=["GET"], include_in_schema=False),
        Route("/redoc", _redoc, methods=["GET"], include_in_schema=False),
        Route("/docs/assets/{name}", _asset, methods=["GET"], include_in_schema=False),
    ]
