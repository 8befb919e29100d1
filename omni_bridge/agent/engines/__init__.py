"""The engines that answer a question: `claude` (the agent loop over Omni's MCP tools) and `omni` (Omni's own
AI through AI Jobs), both behind the `Engine` protocol the `Bridge` calls.

`ClaudeEngine` loads on first use: it imports the `anthropic` SDK, which takes seconds on a busy machine.
"""

from typing import TYPE_CHECKING

from omni_bridge._lazy import lazy_names as _lazy_names
from omni_bridge.agent.engines.base import Engine
from omni_bridge.agent.engines.run import JobOptions, Run

if TYPE_CHECKING:
    from omni_bridge.agent.engines.claude import ClaudeEngine
    from omni_bridge.agent.engines.omni import OmniEngine

_LAZY = {
    "ClaudeEngine": "omni_bridge.agent.engines.claude",
    "OmniEngine": "omni_bridge.agent.engines.omni",
}


__getattr__, __dir__ = _lazy_names(globals(), _LAZY)


__all__ = ["ClaudeEngine", "Engine", "JobOptions", "OmniEngine", "Run"]
