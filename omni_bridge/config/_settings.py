"""Settings: every knob of omni-bridge, read once from the environment or a `.env` file.

pydantic-settings does the parsing (it reads `.env` through python-dotenv), so each value is typed and
validated before anything starts. Field names are the environment variable names in lower case
(`omni_base_url` is `OMNI_BASE_URL`), which keeps the mapping obvious in error messages and docs.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from omni_bridge.exceptions import ConfigError
from omni_bridge.types import AuthStrategyName, EngineChoice, EngineName, ProtocolMode, TopicSelection

__all__ = ["Settings", "load_settings"]


NameList = Annotated[tuple[str, ...], NoDecode]
"""A comma-separated list in the environment (`getData,pickTopic`), a tuple in Python."""


class Settings(BaseSettings):
    """The effective configuration. Build it with `load_settings()` to get readable errors."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        case_sensitive=False,
    )

    # --- Omni -------------------------------------------------------------------------------------
    omni_base_url: AnyHttpUrl | None = Field(
        default=None,
        description="Omni instance, e.g. https://acme.omniapp.co. Unset: the embedded sandbox is used.",
    )
    omni_api_key: SecretStr | None = Field(
        default=None, description="Omni organization API key (needed to act for embed users)."
    )
    omni_auth: AuthStrategyName = Field(
        default="org_key",
        description="How the bridge acts as an end user: org_key (OMNI_API_KEY plus X-MCP-User-ID) or embed_token "
        "(a per-user embed MCP token minted from OMNI_EMBED_SECRET; Omni support must enable it).",
    )
    omni_embed_secret: SecretStr | None = Field(
        default=None, description="Omni embed secret: signs the per-user MCP token requests (OMNI_AUTH=embed_token)."
    )
    omni_model_id: str | None = Field(default=None, description="Pin one Omni model (UUID); sent as X-MCP-Model-ID.")
    omni_topic_name: str | None = Field(default=None, description="Pin one topic; sent as X-MCP-Topic-Name.")
    omni_query_all_views: bool = Field(default=False, description="Send X-MCP-Query-All-Views: true.")
    omni_mcp_path: str = Field(default="/mcp/https", description="Path of Omni's MCP endpoint.")
    omni_mcp_protocol: ProtocolMode = Field(default="auto", description="MCP protocol mode: auto, legacy, modern.")
    omni_timeout_seconds: float = Field(default=30.0, gt=0, description="Timeout of one REST call to Omni.")
    omni_tool_timeout_seconds: float = Field(default=120.0, gt=0, description="Deadline of one MCP tool call.")
    omni_max_retries: int = Field(default=3, ge=0, le=10, description="Retries of a REST call on 429 and 5xx.")
    omni_rest_requests_per_minute: float = Field(
        default=60.0,
        gt=0,
        description="REST calls to Omni per minute per API key at most (Omni allows 60); calls beyond wait their turn.",
    )

    # --- Anthropic --------------------------------------------------------------------------------
    anthropic_api_key: SecretStr | None = Field(default=None, description="Claude API key; unset: the omni engine.")
    anthropic_model: str = Field(default="claude-sonnet-5-5", min_length=1, description="Claude model name.")
    anthropic_base_url: AnyHttpUrl | None = Field(default=None, description="Messages API base URL override.")
    anthropic_max_tokens: int = Field(default=4096, ge=1, le=128_000, description="max_tokens of one Claude turn.")
    anthropic_timeout_seconds: float = Field(default=120.0, gt=0, description="Timeout of one Claude request.")
    anthropic_max_retries: int = Field(default=3, ge=0, le=10, description="SDK retries on 429, 529 and 5xx.")
    anthropic_stream_idle_seconds: float | None = Field(
        default=None, gt=0, description="Longest wait between two events of a Claude stream; unset: the timeout."
    )

    # --- The bridge -------------------------------------------------------------------------------
    bridge_engine: EngineChoice = Field(
        default="auto", description="auto (claude with a key, else omni), claude, omni."
    )
    bridge_data_dir: Path = Field(
        default=Path("~/.omni-bridge"), description="Where conversations and artifacts are stored."
    )
    bridge_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="WARNING", description="Level of the omni_bridge.* and uvicorn.* logs the CLI writes to stderr."
    )
    bridge_log_format: Literal["text", "json"] = Field(
        default="text", description="Logs as text lines, or json: one JSON object per line (time, level, logger...)."
    )
    bridge_metrics: Literal["off", "open", "key"] = Field(
        default="open", description="GET /metrics of serve: open to anyone, key (a service key), or off (no route)."
    )
    bridge_max_turns: int = Field(default=8, ge=1, le=50, description="Claude requests per answer at most.")
    bridge_tools_allow: NameList = Field(
        default=(), description="Only these Omni tools are offered to the model (comma-separated; empty: all)."
    )
    bridge_tools_deny: NameList = Field(default=(), description="Omni tools never offered (comma-separated).")
    bridge_hide_selectors: bool = Field(
        default=True, description="Hide pickModel/pickTopic when OMNI_MODEL_ID/OMNI_TOPIC_NAME pin them."
    )
    bridge_auto_pin_model: bool = Field(
        default=True,
        description="Without OMNI_MODEL_ID: pin the model (X-MCP-Model-ID) of a user whose pickModel lists one.",
    )
    bridge_topic_selection: TopicSelection = Field(
        default="code",
        description="Without OMNI_TOPIC_NAME, who picks the topic: code (the bridge runs pickTopic on getData's "
        "prompt), omni (getData picks), model (the LLM is offered pickTopic).",
    )
    bridge_result_budget_tokens: int = Field(
        default=4000, ge=200, le=100_000, description="Tokens of one tool result the model sees; the rest is kept."
    )
    bridge_max_sessions: int = Field(default=1000, ge=1, description="MCP sessions kept open at most (one per user).")
    bridge_session_idle_seconds: float = Field(default=300.0, gt=0, description="An unused MCP session closes after.")
    bridge_service_keys: SecretStr | None = Field(
        default=None,
        description="HTTP service keys as name:key pairs, comma-separated (the name is the tenant); secret.",
    )
    bridge_tenants: str | None = Field(
        default=None,
        description="How each tenant's end users map to Omni: tenant:own|shared=<tenant>|plain[:upsert|lookup], "
        "comma-separated (default: own namespace when several tenants, plain ids for one; upsert).",
    )
    bridge_store_url: str | None = Field(
        default=None,
        description="Service store: a SQLite path or postgresql://… URL (default: SQLite in BRIDGE_DATA_DIR).",
    )
    bridge_webhook_allow: NameList = Field(
        default=(),
        description="Webhook hosts or networks allowed although private or loopback (comma-separated).",
    )
    bridge_lease_seconds: float = Field(
        default=15.0, ge=1, le=600, description="A running response's lease; a dead worker's runs fail after it."
    )
    bridge_identity_ttl_seconds: float = Field(
        default=300.0, gt=0, description="How long an end user's resolved Omni id is reused."
    )
    bridge_max_runs_per_user: int = Field(
        default=4, ge=1, description="Answers in flight for one end user at most; beyond: 429 with Retry-After."
    )
    bridge_max_runs_per_tenant: int = Field(
        default=64, ge=1, description="Answers in flight for one tenant (service key) at most; beyond: 429."
    )
    bridge_retention_days: float = Field(
        default=90.0,
        ge=0,
        description="Threads, messages, responses, artifacts, conversations older than this are deleted; 0: keep.",
    )

    @field_validator("omni_model_id")
    @classmethod
    def _model_id_is_uuid(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError("must be a model UUID (the segment after /models/ in the model IDE URL)") from None

    @field_validator(
        "omni_topic_name",
        "anthropic_api_key",
        "omni_api_key",
        "omni_embed_secret",
        "bridge_service_keys",
        "bridge_store_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("omni_mcp_path")
    @classmethod
    def _path_starts_with_slash(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/', e.g. /mcp/https")
        return value

    @field_validator("bridge_tools_allow", "bridge_tools_deny", "bridge_webhook_allow", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("bridge_data_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("bridge_log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("bridge_log_format", "bridge_metrics", mode="before")
    @classmethod
    def _lower_choice(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def uses_sandbox(self) -> bool:
        """True when no Omni instance is configured, so the embedded sandbox stands in for it."""
        return self.omni_base_url is None

    def effective_engine(self) -> EngineName:
        """The engine that answers: `claude` needs an Anthropic key; `omni` needs nothing more."""
        if self.bridge_engine == "auto":
            return "claude" if self.anthropic_api_key is not None else "omni"
        return self.bridge_engine

    def describe(self) -> list[tuple[str, str]]:
        """(VARIABLE, value) pairs for display, with every secret masked."""
        rows: list[tuple[str, str]] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                shown = "set (hidden)"
            elif value is None:
                shown = "(unset)"
            else:
                shown = str(value)
            rows.append((name.upper(), shown))
        return rows


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Read the settings, turning validation errors into one `ConfigError` that names each variable.

    Args:
        env_file: the dotenv file to read (missing files are fine); `None` reads the environment only.
        **overrides: values that win over the environment (used by the CLI and tests).

    Raises:
        ConfigError: a value is wrong; the message names the variable, what is wrong, and never the value
            of a secret.
    """
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]  # pydantic-settings init kwarg
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            variable = str(error["loc"][0]).upper() if error["loc"] else "settings"
            problems.append(f"{variable}: {error['msg']}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
