"""Everything that talks to Omni: the MCP session pool, the toolset Claude sees, result shaping, REST."""

from omni_bridge.tools._artifacts import Artifact, ArtifactStore, MemoryArtifactStore
from omni_bridge.tools._chart import ChartPoint, ChartSeries, DataChart
from omni_bridge.tools._claude_tools import ClaudeTool, claude_tools
from omni_bridge.tools._headers import mcp_headers
from omni_bridge.tools._pool import PoolStats, SessionKey, SessionPool
from omni_bridge.tools._rest import OmniRestClient, shared_ssl_context
from omni_bridge.tools._rest_models import (
    EmbedUser,
    JobAction,
    JobCancelled,
    JobCreated,
    JobError,
    JobProgress,
    JobResult,
    JobState,
    JobStatus,
    ModelInfo,
    QueryActionResult,
    TopicInfo,
)
from omni_bridge.tools._results import READ_RESULT_TOOL, ReadResult, ShapedResult, read_result, shape_result
from omni_bridge.tools._toolset import SELECTOR_TOOLS, ToolOutcome, ToolPolicy, Toolset
from omni_bridge.tools._webhooks import ReplayGuard, sign_webhook_payload, verify_webhook

__all__ = [
    "READ_RESULT_TOOL",
    "SELECTOR_TOOLS",
    "Artifact",
    "ArtifactStore",
    "ChartPoint",
    "ChartSeries",
    "ClaudeTool",
    "DataChart",
    "EmbedUser",
    "JobAction",
    "JobCancelled",
    "JobCreated",
    "JobError",
    "JobProgress",
    "JobResult",
    "JobState",
    "JobStatus",
    "MemoryArtifactStore",
    "ModelInfo",
    "OmniRestClient",
    "PoolStats",
    "QueryActionResult",
    "ReadResult",
    "ReplayGuard",
    "SessionKey",
    "SessionPool",
    "ShapedResult",
    "ToolOutcome",
    "ToolPolicy",
    "Toolset",
    "TopicInfo",
    "claude_tools",
    "mcp_headers",
    "read_result",
    "shape_result",
    "shared_ssl_context",
    "sign_webhook_payload",
    "verify_webhook",
]
