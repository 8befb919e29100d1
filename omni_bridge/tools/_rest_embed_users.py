"""The embed-user calls of `OmniRestClient`: find a user by external id (SCIM, then the v0 list), upsert one.

Omni documents the SCIM route lower-case (`/api/scim/v2/embed/users`) while the SCIM spec spells it `/Users`, and
Omni's routes are case-sensitive, so both spellings are tried and the one that answers is kept. An instance that
ignores the `embedExternalId` filter is paged through; one without SCIM (404 on both spellings) is asked through
the older `GET /api/v0/users/embed?externalId=` list from then on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from omni_bridge.exceptions import OmniError, OmniHTTPError
from omni_bridge.tools._rest_models import EmbedUser, ScimListResponse, SessionCreated, V0UserPage
from omni_bridge.tools._rest_transport import RestTransport, parse_answer, path_segment

__all__ = ["EmbedUserCalls"]

logger = logging.getLogger("omni_bridge.tools.rest")

_SCIM_PATHS = ("/api/scim/v2/embed/users", "/api/scim/v2/embed/Users")
_V0_EMBED_USERS = "/api/v0/users/embed"
_PAGE_SIZE = 100
_MAX_PAGES = 1000


class EmbedUserCalls(RestTransport):
    """Finding, reading and upserting Omni embed users."""

    _scim_path: str | None = None
    """The SCIM spelling that answered, once one did."""
    _scim_missing: bool = False
    """Both SCIM spellings answered 404: the v0 list is used from now on."""

    async def find_embed_user(self, external_id: str) -> EmbedUser | None:
        """The embed user whose `embedExternalId` is exactly `external_id`, or `None`.

        Asks SCIM with `filter=embedExternalId eq "<id>"`. An instance that ignores the filter (its answer lists
        other users) is paged through until the user turns up or the list ends. Where SCIM answers 404, the
        older `GET /api/v0/users/embed?externalId=` list is asked instead (and from then on).

        Raises:
            OmniHTTPError: Omni refused (e.g. 401/403), or no embed-user listing exists on the instance.
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        if not self._scim_missing:
            try:
                return await self._find_in_scim(external_id)
            except OmniHTTPError as exc:
                if exc.status != 404:
                    raise
                self._scim_missing = True
                logger.info("SCIM embed-user listing answered 404; using %s instead", _V0_EMBED_USERS)
        return await self._find_in_v0(external_id)

    async def get_embed_user(self, user_id: str) -> EmbedUser | None:
        """The embed user with this Omni user id (SCIM), or `None` if Omni does not know it.

        Raises:
            OmniHTTPError: Omni refused the request.
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        path = f"{self._scim_path or _SCIM_PATHS[0]}/{path_segment(user_id)}"
        try:
            data = await self._request("GET", path)
        except OmniHTTPError as exc:
            if exc.status == 404:
                return None
            raise
        return parse_answer(EmbedUser, data, "GET", path)

    async def generate_session(
        self,
        external_id: str,
        name: str,
        *,
        groups: Sequence[str] | None = None,
        user_attributes: Mapping[str, Any] | None = None,
        entity: str | None = None,
        email: str | None = None,
        connection_roles: Mapping[str, str] | None = None,
        model_roles: Mapping[str, str] | None = None,
        content_path: str = "/",
    ) -> str:
        """Create (or update) the embed user and an embed SSO session for it; returns the `sessionId`.

        Omni replaces the user's groups and attributes with the ones sent, so pass the current ones every time.
        The session must be redeemed within 5 minutes; the bridge only needs the upsert.

        Raises:
            OmniHTTPError: Omni refused (401 without an embed-scoped key, 403 if embedding is off, 400 bad input).
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        body: dict[str, Any] = {"externalId": external_id, "name": name, "contentPath": content_path}
        if groups is not None:
            body["groups"] = list(groups)
        if user_attributes is not None:
            body["userAttributes"] = dict(user_attributes)
        if entity is not None:
            body["entity"] = entity
        if email is not None:
            body["email"] = email
        if connection_roles is not None:
            body["connectionRoles"] = dict(connection_roles)
        if model_roles is not None:
            body["modelRoles"] = dict(model_roles)
        path = "/api/v1/embed/sso/generate-session"
        # An upsert plus a session that expires unused: repeating it changes nothing, so it may be retried.
        data = await self._request("POST", path, json_body=body, idempotent=True)
        return parse_answer(SessionCreated, data, "POST", path).session_id

    async def _scim_list(self, params: dict[str, Any]) -> ScimListResponse:
        """One SCIM page, trying the other spelling of the route once if the first answers 404."""
        candidates = (self._scim_path,) if self._scim_path else _SCIM_PATHS
        for i, path in enumerate(candidates):
            try:
                data = await self._request("GET", path, params=params)
            except OmniHTTPError as exc:
                if exc.status == 404 and i + 1 < len(candidates):
                    continue
                raise
            self._scim_path = path
            return parse_answer(ScimListResponse, data, "GET", path)
        raise AssertionError("unreachable: the last candidate returns or raises")

    async def _find_in_scim(self, external_id: str) -> EmbedUser | None:
        # The filter value is a JSON string (RFC 7644 §3.4.2.2): quotes and backslashes escaped.
        expression = f"embedExternalId eq {json.dumps(external_id, ensure_ascii=False)}"
        page = await self._scim_list({"filter": expression, "count": _PAGE_SIZE})
        found = _exact(page.resources, external_id)
        ignored = any(u.embed_external_id != external_id for u in page.resources)
        if found is not None or not (ignored or page.total_results > len(page.resources)):
            return found
        logger.info("SCIM did not apply the embedExternalId filter; paging through all embed users")
        start = page.start_index + len(page.resources)
        for _ in range(_MAX_PAGES):
            if not page.resources or start > page.total_results:
                return None
            page = await self._scim_list({"startIndex": start, "count": _PAGE_SIZE})
            found = _exact(page.resources, external_id)
            if found is not None:
                return found
            start += len(page.resources)
        raise OmniError(f"GET {self._scim_path}: gave up paging embed users after {_MAX_PAGES} pages")

    async def _find_in_v0(self, external_id: str) -> EmbedUser | None:
        params: dict[str, Any] = {"externalId": external_id, "pageSize": _PAGE_SIZE}
        for _ in range(_MAX_PAGES):
            try:
                data = await self._request("GET", _V0_EMBED_USERS, params=params)
            except OmniHTTPError as exc:
                if exc.status != 404:
                    raise
                detail = f"no embed-user listing: both SCIM ({_SCIM_PATHS[0]}) and {_V0_EMBED_USERS} answered 404"
                raise OmniHTTPError(404, detail, method="GET", path=_V0_EMBED_USERS) from exc
            page = parse_answer(V0UserPage, data, "GET", _V0_EMBED_USERS)
            for record in page.records:
                if record.get("externalId") == external_id and isinstance(record.get("id"), str):
                    return EmbedUser.from_v0_record(record)
            if not (page.page_info.has_next_page and page.page_info.next_cursor):
                return None
            params["cursor"] = page.page_info.next_cursor
        raise OmniError(f"GET {_V0_EMBED_USERS}: gave up paging embed users after {_MAX_PAGES} pages")


def _exact(users: list[EmbedUser], external_id: str) -> EmbedUser | None:
    return next((u for u in users if u.embed_external_id == external_id), None)
