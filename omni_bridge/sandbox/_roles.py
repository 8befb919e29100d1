"""Omni's user roles as the sandbox applies them: which MCP tools each role is offered.

Omni documents that a token gets only the tools its user's roles allow ("a Viewer token doesn't get `getData`")
and that embed users take `connectionRoles`/`modelRoles` maps (`{"<connection or model id>": "VIEWER"}`) from a
signed embed URL, generate-session or an embed MCP token. The sandbox has one connection, so it keeps one role per
user: the *least* of the roles given in either map (a Viewer anywhere is a Viewer here), a guess that errs on the
side of showing less. Embed users without one are `RESTRICTED_QUERIER` (also a guess at Omni's embed default).

`NO_ACCESS` (Omni's "No access" tier) is accepted in `modelRoles` only: it hides that model from the user (no
`pickModel` entry, no query on it) and takes no part in the user's role; `model_access` splits it off.
"""

from __future__ import annotations

from collections.abc import Mapping

from omni_bridge.sandbox._errors import SandboxHTTPError

__all__ = ["DEFAULT_EMBED_ROLE", "NO_ACCESS", "QUERY_TOOLS", "ROLES", "least_role", "model_access", "role_allows"]

ROLES = ("VIEWER", "RESTRICTED_QUERIER", "QUERIER", "EDITOR", "MANAGER")
"""Omni's connection and model roles, least to most."""
DEFAULT_EMBED_ROLE = "RESTRICTED_QUERIER"
NO_ACCESS = "NO_ACCESS"
"""A `modelRoles` value that hides the model from the user."""

QUERY_TOOLS = frozenset({"getData"})
"""Tools that run a query the caller writes; a Viewer may only read what others built (and ask Omni's agent)."""


def least_role(*role_maps: Mapping[str, str] | None) -> str | None:
    """The least of the roles named in `connectionRoles`/`modelRoles` maps, or `None` when none is given.

    Raises:
        SandboxHTTPError: 400 naming an unknown role.
    """
    given: list[str] = []
    for roles in role_maps:
        for where, role in (roles or {}).items():
            if role not in ROLES:
                raise SandboxHTTPError(400, f"Unknown role {role!r} for {where!r}: use one of {', '.join(ROLES)}")
            given.append(role)
    return min(given, key=ROLES.index) if given else None


def model_access(model_roles: Mapping[str, str] | None) -> tuple[dict[str, str] | None, frozenset[str] | None]:
    """`modelRoles` split into the roles that rank the user and the models they may not see (`NO_ACCESS`).

    Both are `None` when no `modelRoles` was given (the user keeps what they had).
    """
    if model_roles is None:
        return None, None
    hidden = frozenset(model for model, role in model_roles.items() if role == NO_ACCESS)
    return {model: role for model, role in model_roles.items() if role != NO_ACCESS}, hidden


def role_allows(role: str, tool: str, *, is_org_admin: bool = False) -> bool:
    """Whether a user of `role` is offered `tool` (an Org Admin is offered everything)."""
    if is_org_admin or tool not in QUERY_TOOLS:
        return True
    return ROLES.index(role) >= ROLES.index("RESTRICTED_QUERIER")
