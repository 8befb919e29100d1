"""The sandbox's embed-user routes: SCIM list and get (and delete), the older v0 list, generate-session.

SCIM and the v0 list need an organization API key, as at Omni. The `scim_available` and `scim_ignores_filter`
fault knobs make SCIM answer 404 or ignore its filter, so clients can be tested against either instance.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from omni_bridge.sandbox._caller import Caller
from omni_bridge.sandbox._errors import SandboxHTTPError
from omni_bridge.sandbox._rest_input import GenerateSessionBody, int_param, parse_body, require_org_key
from omni_bridge.sandbox._roles import least_role, model_access

if TYPE_CHECKING:
    from omni_bridge.sandbox._app import Sandbox

__all__ = ["generate_session", "scim_get", "scim_list", "v0_embed_users"]


async def scim_list(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    require_org_key(caller, "SCIM")
    if not sandbox.faults.scim_available:
        raise SandboxHTTPError(404, "Not Found")
    expression = None if sandbox.faults.scim_ignores_filter else request.query_params.get("filter")
    users = sandbox.directory.find_embed(expression)
    start = int_param(request, "startIndex", 1, low=1, high=1_000_000)
    count = int_param(request, "count", 100, low=0, high=1000)
    page = users[start - 1 : start - 1 + count]
    return JSONResponse(
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "Resources": [u.scim() for u in page],
            "itemsPerPage": len(page),
            "startIndex": start,
            "totalResults": len(users),
        }
    )


async def scim_get(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    require_org_key(caller, "SCIM")
    if not sandbox.faults.scim_available:
        raise SandboxHTTPError(404, "Not Found")
    user = sandbox.directory.get(request.path_params["user_id"])
    if user.kind != "embed":
        raise SandboxHTTPError(404, f"User {user.id} not found")
    if request.method == "DELETE":
        sandbox.directory.delete_embed(user.id)
        return Response(status_code=204)
    return JSONResponse(user.scim())


async def v0_embed_users(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    require_org_key(caller, "listing embed users")
    external_id = request.query_params.get("externalId")
    users = [u for u in sandbox.directory.embed_users() if external_id in (None, u.external_id)]
    page_size = int_param(request, "pageSize", 100, low=1, high=1000)
    records = [
        {
            "id": u.id,
            "externalId": u.external_id,
            "name": u.name,
            "email": u.email,
            "entity": u.entity,
            "groups": list(u.groups),
            "userAttributes": dict(u.attributes),
        }
        for u in users[:page_size]
    ]
    page_info = {
        "hasNextPage": len(users) > page_size,
        "nextCursor": None,
        "pageSize": page_size,
        "totalRecords": len(users),
    }
    return JSONResponse({"records": records, "pageInfo": page_info})


async def generate_session(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    require_org_key(caller, "embed SSO")
    body = await parse_body(request, GenerateSessionBody)
    model_roles, hidden_models = model_access(body.modelRoles)
    attributes = {k: (v if isinstance(v, list) or v is None else str(v)) for k, v in body.userAttributes.items()}
    sandbox.directory.upsert_embed(
        body.externalId,
        body.name,
        groups=body.groups,
        attributes=attributes,
        entity=body.entity,
        email=body.email,
        role=least_role(body.connectionRoles, model_roles),
        hidden_models=hidden_models,
    )
    return JSONResponse({"sessionId": uuid.uuid4().hex})
