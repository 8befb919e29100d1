"""The agent: identity resolution, the engines (`claude`, `omni`), typed events, conversations and stores.

Most applications need only `Bridge` (and `EndUser`); the rest is here for those who assemble their own.
"""

from omni_bridge.agent._bridge import Bridge, EndUser
from omni_bridge.agent._claude import ClaudeEngine
from omni_bridge.agent._omni import OmniEngine
from omni_bridge.agent._run import Run
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
