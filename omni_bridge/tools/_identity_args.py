"""Identity arguments: the names a tool call may not use to choose whom it acts for.

The acting user of a call is fixed by its session (the `SessionKey`, whose headers the MCP session was opened
with), never by what the model writes into the arguments. A model that was talked into it (a prompt injection in
a question, a document, an earlier result) could otherwise pass `userId: "someone-else"` or a header-like
`X-MCP-User-ID`, and how Omni would treat such an argument is not documented. So every call bound for Omni has
these arguments removed first, whatever the tool's schema says, and the model is told which were removed.

The rule, one place for every path to Omni (`Toolset.call`, the MCP proxy): a key is an identity argument when
its *normalized* name (lower-cased, every character that is not a letter or a digit dropped, so `user_id`,
`User-ID`, `user.id` and `USERID` are all `userid`)

- ends with `userid`, `externalid` or `useremail` (`userId`, `embedUserId`, `external_id`, `targetUserId`), or
- is one of `user`, `username`, `email`, `embeduser`, `actas`, `asuser`, `runas`, `onbehalfof`, `impersonate`, or
- starts with `xmcp` or `xbridge` (any `X-MCP-*` header name, such as `X-MCP-User-ID` or `X-MCP-Model-ID`, and the
  bridge's own `X-Bridge-User`: session headers, never arguments).

Keys are matched at any depth (objects inside objects and lists); the whole value under a matched key goes.
Values are never inspected: a string argument that *mentions* a user (`prompt: "revenue for bob"`) is a question,
and row-level security at Omni answers it for the session's user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["StrippedArguments", "is_identity_argument", "strip_identity_arguments"]

_SUFFIXES = ("userid", "externalid", "useremail")
_NAMES = frozenset({"user", "username", "email", "embeduser", "actas", "asuser", "runas", "onbehalfof", "impersonate"})
_PREFIXES = ("xmcp", "xbridge")


def _normalized(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def is_identity_argument(name: str) -> bool:
    """Whether an argument called `name` names an identity (see the module's rule)."""
    key = _normalized(name)
    return key in _NAMES or key.endswith(_SUFFIXES) or key.startswith(_PREFIXES)


@dataclass(frozen=True, slots=True)
class StrippedArguments:
    """A call's arguments with the identity arguments removed, and where they were."""

    arguments: dict[str, Any]
    """A new object; the caller's is never changed."""
    removed: tuple[str, ...]
    """Paths of the removed keys, in the arguments' order, e.g. `("userId", "filters[0].X-MCP-User-ID")`."""

    @property
    def note(self) -> str | None:
        """The sentence for the model's tool result (`None` when nothing was removed)."""
        if not self.removed:
            return None
        return (
            f"Removed identity arguments: {', '.join(self.removed)} — the acting user is fixed by the session, "
            "so the call was made for the signed-in user only."
        )


def strip_identity_arguments(arguments: Mapping[str, Any]) -> StrippedArguments:
    """Copy `arguments` without identity arguments, at any depth.

    ```python
    stripped = strip_identity_arguments({"prompt": "revenue", "userId": "bob", "filters": [{"X-MCP-User-ID": "b"}]})
    stripped.arguments  # {"prompt": "revenue", "filters": [{}]}
    stripped.removed    # ("userId", "filters[0].X-MCP-User-ID")
    ```
    """
    removed: list[str] = []
    cleaned = _strip_mapping(arguments, "", removed)
    return StrippedArguments(arguments=cleaned, removed=tuple(removed))


def _strip(value: Any, path: str, removed: list[str]) -> Any:
    if isinstance(value, Mapping):
        return _strip_mapping(value, path, removed)
    if isinstance(value, list | tuple):
        return [_strip(item, f"{path}[{index}]", removed) for index, item in enumerate(value)]
    return value  # strings, numbers, booleans and null are kept as they are (immutable, so shared safely)


def _strip_mapping(mapping: Mapping[str, Any], path: str, removed: list[str]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, value in mapping.items():
        where = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and is_identity_argument(key):
            removed.append(where)
        else:
            cleaned[key] = _strip(value, where, removed)
    return cleaned
