"""Everything that talks to Omni: auth strategies, the MCP session pool, the toolset Claude sees, result shaping,
REST."""

from omni_bridge.tools._artifacts import Artifact, ArtifactStore, MemoryArtifactStore
from omni_bridge.tools._attachments import (
    MAX_ATTACHMENTS,
    MAX_ATTACHMENTS_BYTES,
    MAX_IMAGE_BYTES,
    JobAttachment,
    check_attachments,
)
from omni_bridge.tools._auth import AuthStrategy, EmbedTokenAuth, OrgKeyAuth
from omni_bridge.tools._auto_pin import ModelPins, listed_model_ids, picked_topic
from omni_bridge.tools._budget import CHARS_PER_TOKEN, estimate_tokens
from omni_bridge.tools._chart import MAX_CHART_POINTS, ChartPoint, ChartSeries, DataChart, derive_chart, parse_number
from omni_bridge.tools._claude_tools import ClaudeTool, claude_tools
from omni_bridge.tools._embed_tokens import EmbedPrincipal, EmbedTokenError, EmbedTokenMinter
from omni_bridge.tools._headers import mcp_headers
from omni_bridge.tools._identity_args import StrippedArguments, is_identity_argument, strip_identity_arguments
from omni_bridge.tools._pool import EMBED_TOKEN_PATH, PoolStats, SessionPool
from omni_bridge.tools._preview import Completeness, PreviewSection, QueryRerun, complete_preview, split_preview
from omni_bridge.tools._provenance import QueryProvenance, partial_notice, query_provenance
from omni_bridge.tools._read_result import (
    DEFAULT_READ_LIMIT,
    MAX_READ_LIMIT,
    READ_RESULT_TOOL,
    InvalidReadArguments,
    ReadResult,
    ReadResultError,
    ResultNotFound,
    read_result,
)
from omni_bridge.tools._rest import OmniRestClient
from omni_bridge.tools._rest_models import (
    ConversationDetail,
    ConversationMessage,
    ConversationPage,
    ConversationSummary,
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
from omni_bridge.tools._rest_pacer import (
    LOOPBACK_REQUESTS_PER_MINUTE,
    OMNI_REQUESTS_PER_MINUTE,
    RestBudgetBusy,
    RestPacer,
    configured_budget,
    default_budget,
)
from omni_bridge.tools._rest_query import QueryRows
from omni_bridge.tools._rest_transport import shared_ssl_context
from omni_bridge.tools._session_key import SessionKey
from omni_bridge.tools._shape import ShapedResult, shape_result
from omni_bridge.tools._toolset import CODE_ONLY_TOOLS, SELECTOR_TOOLS, ToolOutcome, ToolPolicy, Toolset
from omni_bridge.tools._webhooks import ReplayGuard, sign_webhook_payload, verify_webhook

__all__ = [
    "CHARS_PER_TOKEN",
    "CODE_ONLY_TOOLS",
    "DEFAULT_READ_LIMIT",
    "EMBED_TOKEN_PATH",
    "LOOPBACK_REQUESTS_PER_MINUTE",
    "MAX_ATTACHMENTS",
    "MAX_ATTACHMENTS_BYTES",
    "MAX_CHART_POINTS",
    "MAX_IMAGE_BYTES",
    "MAX_READ_LIMIT",
    "OMNI_REQUESTS_PER_MINUTE",
    "READ_RESULT_TOOL",
    "SELECTOR_TOOLS",
    "Artifact",
    "ArtifactStore",
    "AuthStrategy",
    "ChartPoint",
    "ChartSeries",
    "ClaudeTool",
    "Completeness",
    "ConversationDetail",
    "ConversationMessage",
    "ConversationPage",
    "ConversationSummary",
    "DataChart",
    "EmbedPrincipal",
    "EmbedTokenAuth",
    "EmbedTokenError",
    "EmbedTokenMinter",
    "EmbedUser",
    "InvalidReadArguments",
    "JobAction",
    "JobAttachment",
    "JobCancelled",
    "JobCreated",
    "JobError",
    "JobProgress",
    "JobResult",
    "JobState",
    "JobStatus",
    "MemoryArtifactStore",
    "ModelInfo",
    "ModelPins",
    "OmniRestClient",
    "OrgKeyAuth",
    "PoolStats",
    "PreviewSection",
    "QueryActionResult",
    "QueryProvenance",
    "QueryRerun",
    "QueryRows",
    "ReadResult",
    "ReadResultError",
    "ReplayGuard",
    "RestBudgetBusy",
    "RestPacer",
    "ResultNotFound",
    "SessionKey",
    "SessionPool",
    "ShapedResult",
    "StrippedArguments",
    "ToolOutcome",
    "ToolPolicy",
    "Toolset",
    "TopicInfo",
    "check_attachments",
    "claude_tools",
    "complete_preview",
    "configured_budget",
    "default_budget",
    "derive_chart",
    "estimate_tokens",
    "is_identity_argument",
    "listed_model_ids",
    "mcp_headers",
    "parse_number",
    "partial_notice",
    "picked_topic",
    "query_provenance",
    "read_result",
    "shape_result",
    "shared_ssl_context",
    "sign_webhook_payload",
    "split_preview",
    "strip_identity_arguments",
    "verify_webhook",
]
