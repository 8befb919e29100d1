"""The model and topic calls of `OmniRestClient`: what the key can query in Omni's semantic layer."""

from __future__ import annotations

from omni_bridge.exceptions import OmniError
from omni_bridge.tools._rest_models import ModelInfo, ModelPage, TopicInfo, TopicList
from omni_bridge.tools._rest_transport import RestTransport, parse_answer, path_segment

__all__ = ["CatalogCalls"]

_MAX_PAGES = 1000


class CatalogCalls(RestTransport):
    """Listing Omni's models and their topics."""

    async def list_models(self, *, model_kind: str | None = None, name: str | None = None) -> list[ModelInfo]:
        """Every model the key can see (all pages), optionally only of one `modelKind` or `name`.

        Raises:
            OmniHTTPError: Omni refused the request.
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        params: dict[str, str] = {}
        if model_kind is not None:
            params["modelKind"] = model_kind
        if name is not None:
            params["name"] = name
        path = "/api/v1/models"
        models: list[ModelInfo] = []
        for _ in range(_MAX_PAGES):
            page = parse_answer(ModelPage, await self._request("GET", path, params=params), "GET", path)
            models += page.records
            if not (page.page_info.has_next_page and page.page_info.next_cursor):
                return models
            params["cursor"] = page.page_info.next_cursor
        raise OmniError(f"GET {path}: gave up after {_MAX_PAGES} pages")

    async def list_topics(self, model_id: str) -> list[TopicInfo]:
        """The topics of one model.

        Raises:
            OmniHTTPError: Omni refused the request (404: no such model).
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        path = f"/api/v1/models/{path_segment(model_id)}/topic"
        return parse_answer(TopicList, await self._request("GET", path), "GET", path).topics
