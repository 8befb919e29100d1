"""omni-bridge: put an LLM agent in front of Omni Analytics data, acting for each end user.

The product in one import: `Bridge` (answers questions for an `EndUser`), `OmniConnection` (Omni for one
deployment: target, REST, MCP session pool, identities), `Settings` and `load_settings`, the typed events and
content parts a response streams, and the errors omni-bridge raises. The rooms below (`omni_bridge.agent`,
`omni_bridge.tools`, `omni_bridge.server`, ...) hold the parts for those who assemble their own.

Every name loads on first use: `import omni_bridge` (and `omni_bridge.__version__`, which
`omni-bridge --version` prints) must not pay for the `anthropic` SDK, `mcp`, `starlette`, `uvicorn` or `httpx2`.
"""

from typing import TYPE_CHECKING

from omni_bridge._lazy import lazy_names as _lazy_names

if TYPE_CHECKING:
    from omni_bridge.agent import (
        ActionButton,
        AssistantMessage,
        Bridge,
        ChartPagePart,
        ChartPageReady,
        ChartPart,
        ChartReady,
        ContentPart,
        CustomPart,
        EndUser,
        ErrorEvent,
        Event,
        EventAdapter,
        FinalMessage,
        OmniConnection,
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
        UsageReport,
    )
    from omni_bridge.config import Settings, load_settings
    from omni_bridge.exceptions import (
        ConfigError,
        IdentityError,
        McpConnectError,
        McpError,
        OmniBridgeError,
        OmniError,
        OmniHTTPError,
        SessionExpired,
        ToolTimeout,
        WebhookVerificationError,
    )
    from omni_bridge.tools import ChartPoint, ChartSeries, DataChart, QueryProvenance

__version__ = "0.1.0"

_FACES: dict[str, tuple[str, ...]] = {
    "omni_bridge.agent": (
        "Bridge",
        "EndUser",
        "OmniConnection",
        # the events of a response, the union of them, and its JSON adapter
        "ChartPageReady",
        "ChartReady",
        "ErrorEvent",
        "Event",
        "EventAdapter",
        "FinalMessage",
        "Progress",
        "SuggestedActions",
        "TextDelta",
        "ThinkingDelta",
        "ToolCallFinished",
        "ToolCallStarted",
        "UsageReport",
        # what the events carry: a finished message, its content parts, token usage
        "ActionButton",
        "AssistantMessage",
        "ChartPagePart",
        "ChartPart",
        "ContentPart",
        "CustomPart",
        "ProvenancePart",
        "StructuredActionPart",
        "SuggestedActionsPart",
        "TextPart",
        "ThinkingPart",
        "TurnUsage",
        "Usage",
    ),
    "omni_bridge.tools": ("ChartPoint", "ChartSeries", "DataChart", "QueryProvenance"),  # data of content parts
    "omni_bridge.config": ("Settings", "load_settings"),
    "omni_bridge.exceptions": (
        "ConfigError",
        "IdentityError",
        "McpConnectError",
        "McpError",
        "OmniBridgeError",
        "OmniError",
        "OmniHTTPError",
        "SessionExpired",
        "ToolTimeout",
        "WebhookVerificationError",
    ),
}
_FACE_OF = {name: face for face, names in _FACES.items() for name in names}


__getattr__, __dir__ = _lazy_names(globals(), _FACE_OF)


__all__ = [
    "ActionButton",
    "AssistantMessage",
    "Bridge",
    "ChartPagePart",
    "ChartPageReady",
    "ChartPart",
    "ChartPoint",
    "ChartReady",
    "ChartSeries",
    "ConfigError",
    "ContentPart",
    "CustomPart",
    "DataChart",
    "EndUser",
    "ErrorEvent",
    "Event",
    "EventAdapter",
    "FinalMessage",
    "IdentityError",
    "McpConnectError",
    "McpError",
    "OmniBridgeError",
    "OmniConnection",
    "OmniError",
    "OmniHTTPError",
    "Progress",
    "ProvenancePart",
    "QueryProvenance",
    "SessionExpired",
    "Settings",
    "StructuredActionPart",
    "SuggestedActions",
    "SuggestedActionsPart",
    "TextDelta",
    "TextPart",
    "ThinkingDelta",
    "ThinkingPart",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolTimeout",
    "TurnUsage",
    "Usage",
    "UsageReport",
    "WebhookVerificationError",
    "load_settings",
]
