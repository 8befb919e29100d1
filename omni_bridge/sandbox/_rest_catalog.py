"""The sandbox's model and topic routes: `GET /api/v1/models`, a model's topics, one topic with its fields."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from omni_bridge.sandbox._answer import Scope, resolve_model, resolve_topic
from omni_bridge.sandbox._caller import Caller
from omni_bridge.sandbox._rest_input import int_param
from omni_bridge.sandbox._semantic import MODELS

if TYPE_CHECKING:
    from omni_bridge.sandbox._app import Sandbox

__all__ = ["CONNECTION_ID", "get_topic", "list_models", "list_topics"]

CONNECTION_ID = "c0ffee00-0000-4000-8000-000000000001"
"""The one database connection every demo model is built on."""


async def list_models(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    kind = request.query_params.get("modelKind")
    name = request.query_params.get("name")
    model_id = request.query_params.get("modelId")
    records = [
        {
            "id": m.id,
            "name": m.name,
            "modelKind": "SHARED",
            "connectionId": CONNECTION_ID,
            "baseModelId": None,
            "createdAt": "2024-01-01T00:00:00Z",
            "updatedAt": "2026-10-01T00:00:00Z",
            "deletedAt": None,
        }
        for m in MODELS
        if kind in (None, "SHARED") and name in (None, m.name) and model_id in (None, m.id)
    ]
    page_size = int_param(request, "pageSize", 20, low=1, high=100)
    page_info = {
        "hasNextPage": len(records) > page_size,
        "nextCursor": None,
        "pageSize": page_size,
        "totalRecords": len(records),
    }
    return JSONResponse({"pageInfo": page_info, "records": records[:page_size]})


async def list_topics(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    model = resolve_model(Scope(model_id=request.path_params["model_id"]))
    topics = [
        {
            "name": t.name,
            "base_view_name": t.base_view,
            "label": t.label,
            "description": t.description,
            "group_label": None,
            "hidden": False,
        }
        for t in model.topics
    ]
    return JSONResponse({"success": True, "topics": topics})


async def get_topic(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    model = resolve_model(Scope(model_id=request.path_params["model_id"]))
    topic = resolve_topic(model, "", Scope(model_id=model.id), request.path_params["topic_name"])
    fields = [
        {"name": f.name, "label": f.label, "description": f.description, "kind": kind}
        for kind, group in (("dimension", topic.dimensions), ("measure", topic.measures))
        for f in group
    ]
    body = {
        "name": topic.name,
        "label": topic.label,
        "description": topic.description,
        "base_view_name": topic.base_view,
        "fields": fields,
        "views": [],
        "relationships": [],
        "sample_questions": list(topic.sample_questions),
    }
    return JSONResponse({"success": True, "topic": body})
