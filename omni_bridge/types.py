"""Type aliases shared by many rooms of the package; a leaf that imports nothing of omni_bridge."""

from typing import Literal

__all__ = ["AuthStrategyName", "EngineChoice", "EngineName", "ProtocolMode", "TopicSelection"]

EngineName = Literal["claude", "omni"]
"""An engine that answers: `claude` (the agent loop over Omni's MCP tools) or `omni` (Omni's own agent, AI Jobs)."""

EngineChoice = Literal["auto", "claude", "omni"]
"""The `BRIDGE_ENGINE` setting: an engine, or `auto` (claude with an Anthropic key, else omni)."""

AuthStrategyName = Literal["org_key", "embed_token"]
"""How the bridge acts as an end user at Omni (`OMNI_AUTH`): the org key plus `X-MCP-User-ID`, or a per-user
embed MCP token minted from the embed secret."""

ProtocolMode = Literal["auto", "legacy", "modern"]
"""The MCP protocol a session speaks: `auto` (modern where the server speaks it), or one forced."""

TopicSelection = Literal["code", "omni", "model"]
"""Who picks the topic when none is pinned (`BRIDGE_TOPIC_SELECTION`): the bridge's code runs `pickTopic` on the
query's prompt (`code`), Omni's `getData` picks (`omni`), or the LLM calls `pickTopic` itself (`model`)."""
