"""The HTTP headers that make an Omni MCP request act for one user (`X-MCP-User-ID`) and pin its scope."""

from __future__ import annotations

__all__ = ["mcp_headers", "scope_headers"]


def mcp_headers(
    api_key: str,
    *,
    user_id: str | None,
    model_id: str | None = None,
    topic_name: str | None = None,
    query_all_views: bool = False,
) -> dict[str, str]:
    """Headers for an MCP session acting for `user_id`.

    `X-MCP-User-Required: true` goes with every user id so that, should the id ever be lost on the way, Omni
    refuses the request instead of running it as the key's owner (an Org Admin).
    """
    headers = {"Authorization": f"Bearer {api_key}"}
    if user_id is not None:
        headers["X-MCP-User-ID"] = user_id
        headers["X-MCP-User-Required"] = "true"
    headers.update(scope_headers(model_id=model_id, topic_name=topic_name, query_all_views=query_all_views))
    return headers


def scope_headers(
    *, model_id: str | None = None, topic_name: str | None = None, query_all_views: bool = False
) -> dict[str, str]:
    """The headers that pin what a session may see (whoever it acts for)."""
    headers: dict[str, str] = {}
    if model_id:
        headers["X-MCP-Model-ID"] = model_id
    if topic_name:
        headers["X-MCP-Topic-Name"] = topic_name
    if query_all_views:
        headers["X-MCP-Query-All-Views"] = "true"
    return headers
