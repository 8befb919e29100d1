"""Names a package face loads on first use, so importing the face does not import what stands behind them.

The faces that use it (`omni_bridge`, `omni_bridge.agent`, `omni_bridge.agent.engines`, `omni_bridge.server`)
name modules that import the anthropic SDK, mcp or starlette, which take about a second to import; `import
omni_bridge` and `omni-bridge --version` must not pay for them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    namespace: dict[str, Any], where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module's `__getattr__` and `__dir__` for the names `where` maps to the modules that define them.

    `namespace` is the face's `globals()`: a name, once loaded, is kept there, so the next access is plain.
    """
    module_name = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
