"""The agent: identity resolution, the engines (`claude`, `omni`), typed events, conversations and stores.

Most applications need only `Bridge` (and `EndUser`); the rest is here for those who assemble their own.

The engines (and `Bridge`, which holds them) load on first use: they import the `anthropic` SDK, which takes
seconds on a busy machine, and the MCP proxy and CLI commands that need only identities and stores should not
wait for it.
"""

import importlib as _importlib
from typing import TYPE_CHECKING, Any as _Any

from omni_bridge.agent.conversation import Conversation, new_conversation_id, repair_transcript
from omni_bridge.agent.events import (
    ActionButton,
    AssistantMessage,
    ChartPart,
    ChartReady,
    ContentPart,
    CustomPart,
    ErrorEvent,
    Event,
    EventAdapter,
    FinalMessage,
    Progress,
    StructuredActionPart,
    SuggestedActions,
    SuggestedActionsPart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ToolCallFinished,
    ToolCallStarted,
    TurnUsage,
    Usage,
    UsageLedger,
    UsageReport,
)
from omni_bridge.agent.identity import IdentityResolver, OmniIdentity
from omni_bridge.agent.stores import ConversationStore, MemoryConversationStore, SqliteConversationStore, open_store

if TYPE_CHECKING:
    from omni_bridge.agent._bridge import Bridge, EndUser
    from omni_bridge.agent._claude import ClaudeEngine
    from omni_bridge.agent._omni import OmniEngine
    from omni_bridge.agent._run import Run

_LAZY = {
    "Bridge": "omni_bridge.agent._bridge",
    "EndUser": "omni_bridge.agent._bridge",
    "ClaudeEngine": "omni_bridge.agent._claude",
    "OmniEngine": "omni_bridge.agent._omni",
    "Run": "omni_bridge.agent._run",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ActionButton",
    "AssistantMessage",
    "Bridge",
    "ChartPart",
    "ChartReady",
    "ClaudeEngine",
    "ContentPart",
    "Conversation",
    "ConversationStore",
    "CustomPart",
    "EndUser",
    "ErrorEvent",
    "Event",
    "EventAdapter",
    "FinalMessage",
    "IdentityResolver",
    "MemoryConversationStore",
    "OmniEngine",
    "OmniIdentity",
    "Progress",
    "Run",
    "SqliteConversationStore",
    "StructuredActionPart",
    "SuggestedActions",
    "SuggestedActionsPart",
    "TextDelta",
    "TextPart",
    "ThinkingDelta",
    "ThinkingPart",
    "ToolCallFinished",
    "ToolCallStarted",
    "TurnUsage",
    "Usage",
    "UsageLedger",
    "UsageReport",
    "new_conversation_id",
    "open_store",
    "repair_transcript",
]
