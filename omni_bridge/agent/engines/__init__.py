"""The engines that answer a question: `claude` (the agent loop over Omni's MCP tools) and `omni` (Omni's own
AI through AI Jobs), both behind the `Engine` protocol the `Bridge` calls.

`ClaudeEngine` loads on first use: it imports the `anthropic` SDK, which takes seconds on a busy machine.
"""

import importlib as _importlib
from typing import TYPE_CHECKING, Any as _Any

from omni_bridge.agent.engines.base import Engine
from omni_bridge.agent.engines.run import Run

if TYPE_CHECKING:
    from omni_bridge.agent.engines.claude import ClaudeEngine
    from omni_bridge.agent.engines.omni import OmniEngine

_LAZY = {
    "ClaudeEngine": "omni_bridge.agent.engines.claude",
    "OmniEngine": "omni_bridge.agent.engines.omni",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = ["ClaudeEngine", "Engine", "OmniEngine", "Run"]
