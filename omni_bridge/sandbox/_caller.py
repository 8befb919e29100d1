"""Who a request is from and whom it acts for, read from its headers on every request.

MCP requests name their user with `X-MCP-User-ID` and their scope with `X-MCP-Model-ID`,
`X-MCP-Topic-Name` and `X-MCP-Query-All-Views`, as Omni documents them. The value format of the boolean
headers is undocumented; the sandbox accepts `true`/`false` in any case (also `1`/`0`, `yes`/`no`) and
answers 400 for anything else rather than guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from omni_bridge.sandbox._answer import Scope
from omni_bridge.sandbox._directory import ApiKey, Directory, SandboxUser
from omni_bridge.sandbox._errors import SandboxHTTPError

__all__ = ["Caller", "caller_from_headers", "parse_bool_header"]

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


@dataclass(frozen=True, slots=True)
class Caller:
    """The key that authenticated a request, the user it runs as, and what it pinned."""

    key: ApiKey
    user: SandboxUser
    scope: Scope

    @property
    def is_org_key(self) -> bool:
        return self.key.kind == "org"


def parse_bool_header(headers: Mapping[str, str], name: str) -> bool:
    raw = headers.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SandboxHTTPError(400, f"Bad Request: header {name} must be 'true' or 'false', got {raw[:32]!r}")


def caller_from_headers(directory: Directory, headers: Mapping[str, str]) -> Caller:
    """Authenticate and resolve the MCP caller.

    With `X-MCP-User-Required: true`, a request without `X-MCP-User-ID` is refused (403) instead of
    running as the key's owner: that is the point of the header, and running as an Org Admin by
    accident is the worst failure an embedding can have. An embed MCP token needs no user header: it is the user.

    Raises:
        SandboxHTTPError: 401 (no or wrong key), 400 (malformed header), 403 (user required but absent,
            or a personal token naming someone else), 404 (unknown user).
    """
    key = directory.authenticate(headers.get("authorization"))
    required = parse_bool_header(headers, "x-mcp-user-required")
    user_id = (headers.get("x-mcp-user-id") or "").strip() or None
    if required and user_id is None and key.kind != "embed":  # an embed token is its user
        raise SandboxHTTPError(403, "Forbidden: X-MCP-User-Required is true but no X-MCP-User-ID header was sent")
    user = directory.act_as(key, user_id)
    scope = Scope(
        model_id=(headers.get("x-mcp-model-id") or "").strip() or None,
        topic_name=(headers.get("x-mcp-topic-name") or "").strip() or None,
        query_all_views=parse_bool_header(headers, "x-mcp-query-all-views"),
    )
    return Caller(key=key, user=user, scope=scope)
