"""The agent: the Omni connection, identity resolution, the engines (`claude`, `omni`), events, conversations.

Most applications need only `Bridge` (and `EndUser`); the proxy, the framework adapters and the CLI use
`OmniConnection`, the one place that assembles "Omni for user X"; the rest is here for those who assemble their own.

The engines (and `Bridge`, which holds them) load on first use: they import the `anthropic` SDK, which takes
seconds on a busy machine, and the MCP proxy and CLI commands that need only identities and stores should not
wait for it.
"""

from typing import TYPE_CHECKING

from omni_bridge._lazy import lazy_names as _lazy_names
from omni_bridge.agent.conversation import Conversation, new_conversation_id, repair_transcript
from omni_bridge.agent.conversation_store import ConversationStore, MemoryConversationStore
from omni_bridge.agent.events import (
    ActionButton,
    AssistantMessage,
    ChartPagePart,
    ChartPageReady,
    ChartPart,
    ChartReady,
    ContentPart,
    CustomPart,
    ErrorEvent,
    Event,
    EventAdapter,
    FinalMessage,
    Progress,
    ProvenancePart,
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
from omni_bridge.agent.identity import EndUser, IdentityResolver, OmniIdentity

if TYPE_CHECKING:
    from omni_bridge.agent._bridge import Bridge
    from omni_bridge.agent.connection import SANDBOX_DIR, SANDBOX_SERVER, OmniConnection
    from omni_bridge.agent.engines import ClaudeEngine, OmniEngine, Run

_LAZY = {
    "Bridge": "omni_bridge.agent._bridge",
    "OmniConnection": "omni_bridge.agent.connection",
    "SANDBOX_DIR": "omni_bridge.agent.connection",
    "SANDBOX_SERVER": "omni_bridge.agent.connection",
    "ClaudeEngine": "omni_bridge.agent.engines",
    "OmniEngine": "omni_bridge.agent.engines",
    "Run": "omni_bridge.agent.engines",
}


__getattr__, __dir__ = _lazy_names(globals(), _LAZY)


__all__ = [
    "SANDBOX_DIR",
    "SANDBOX_SERVER",
    "ActionButton",
    "AssistantMessage",
    "Bridge",
    "ChartPagePart",
    "ChartPageReady",
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
    "OmniConnection",
    "OmniEngine",
    "OmniIdentity",
    "Progress",
    "ProvenancePart",
    "Run",
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
    "repair_transcript",
]
