"""Parse a request's JSON body without letting deep nesting reach a 500.

`json.loads` overflows the stack (`RecursionError`) on a body nested a few thousand levels deep. jiter (through
`pydantic_core.from_json`, already a dependency of pydantic) refuses more than 200 levels as it refuses bad
syntax, so every route that reads JSON by hand turns both into the same 400. NaN and Infinity are refused too:
they are not JSON.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import from_json

__all__ = ["InvalidJson", "load_json"]


class InvalidJson(ValueError):
    """The body is not JSON: `str()` is `Invalid JSON`, with `: nested too deeply` when that is why."""


def load_json(raw: bytes) -> Any:
    """The parsed body.

    Raises:
        InvalidJson: bad syntax, bad UTF-8, NaN/Infinity, or nesting deeper than 200 levels.
    """
    try:
        return from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        too_deep = "recursion limit" in str(exc)
        raise InvalidJson("Invalid JSON: nested too deeply" if too_deep else "Invalid JSON") from None
