"""Auto-pinning: fewer LLM round trips when the deployment pins neither the model nor the topic.

Omni's documented flow is pick a model, pick a topic, run the query. Left to the LLM, each pick is one more
round trip to the Messages API before the query. The bridge takes the picks it can make safely from its own
code, by these rules (each one overridable by settings):

**Model** (`X-MCP-Model-ID`)
1. `OMNI_MODEL_ID` pins one model for every user, and wins over everything below.
2. Otherwise, with `BRIDGE_AUTO_PIN_MODEL=true` (the default), the bridge calls Omni's `pickModel` from code,
   on the user's own unpinned session (so it lists the models *that user* may see), once per session key,
   cached for the identity TTL (failures for at most a minute). Then:
   - exactly one model listed: that user's sessions are pinned to it (the header is sent) and, with
     `BRIDGE_HIDE_SELECTORS=true`, `pickModel` is no longer offered to the LLM;
   - no model, several, an answer it cannot read (neither `structuredContent` nor JSON text with `models[].id`),
     no `pickModel` tool, or an error: nothing is pinned, `pickModel` stays offered and the LLM picks.
   A model is never pinned from the organization's list: only from what the user's own session listed.
3. `BRIDGE_AUTO_PIN_MODEL=false`: never auto-pinned.

**Topic** (`X-MCP-Topic-Name` / `getData`'s `topicName`)
1. `OMNI_TOPIC_NAME` pins one topic, and wins.
2. Otherwise `BRIDGE_TOPIC_SELECTION` decides who picks:
   - `code` (the default): `pickTopic` is not offered to the LLM; when it calls `getData` without a
     `topicName` (and `getData`'s schema takes one), the bridge first calls `pickTopic` on the same session
     with the call's own arguments that `pickTopic` takes (`prompt`, `modelId`), and passes the topic it picked
     on as `topicName`. The topic is resolved in the same turn as the query, whether Omni's `getData` needs a
     topic, picks one itself, or uses the one `pickTopic` selected for the session. If `pickTopic` fails, its
     answer cannot be read, or it is in `BRIDGE_TOOLS_DENY`, `getData` runs as the LLM asked.
   - `omni`: `pickTopic` is not offered, and `getData` runs as asked: Omni picks the topic when none is given.
     The sandbox does; Omni does not document it (see the sandbox's `sandbox-guesses.md`).
   - `model`: `pickTopic` is offered and the LLM picks (one more round trip).

Both keep the LLM's cached prompt prefix stable per user: the pin is decided before a user's first request and
then cached, so the tool list (and the system prompt built from it) is the same from one question to the next.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omni_bridge._bounded import BoundedMap
from omni_bridge.exceptions import OmniError
from omni_bridge.tools._pool import SessionPool
from omni_bridge.tools._session_key import SessionKey

if TYPE_CHECKING:  # in annotations only: `mcp` is imported when a session opens
    import mcp_types as types

__all__ = [
    "MODEL_LISTING_TOOL",
    "TOPIC_PICKER_TOOL",
    "TOPIC_TAKING_TOOLS",
    "ModelPins",
    "listed_model_ids",
    "picked_topic",
]

log = logging.getLogger("omni_bridge.tools")

MODEL_LISTING_TOOL = "pickModel"
TOPIC_PICKER_TOOL = "pickTopic"
TOPIC_TAKING_TOOLS = frozenset({"getData"})
"""Tools whose calls get a topic picked from code (`BRIDGE_TOPIC_SELECTION=code`). Not `askOmni`: Omni's agent
picks (and switches) topics itself over its several steps."""
FAILURE_TTL_SECONDS = 60.0
"""How long a failed listing counts as "not pinned" before the bridge asks again."""


def _payload(result: types.CallToolResult) -> Any:
    """The result's data: `structuredContent`, else its text parsed as JSON; `None` for an error or plain text."""
    if result.is_error:
        return None
    if result.structured_content is not None:
        return result.structured_content
    text = "".join(getattr(block, "text", "") for block in result.content if block.type == "text").strip()
    try:
        return json.loads(text) if text[:1] in ("{", "[") else None
    except ValueError:
        return None


def listed_model_ids(result: types.CallToolResult) -> list[str] | None:
    """The model ids a `pickModel` answer lists, in order; `None` when it cannot be read as such a list."""
    payload = _payload(result)
    models = payload.get("models") if isinstance(payload, Mapping) else payload
    if not isinstance(models, list):
        return None
    ids = [model.get("id") or model.get("modelId") for model in models if isinstance(model, Mapping)]
    if len(ids) != len(models) or not all(isinstance(i, str) and i for i in ids):
        return None  # an entry without an id: not a listing to pin from
    return [str(i) for i in ids]


def picked_topic(result: types.CallToolResult) -> str | None:
    """The topic a `pickTopic` answer picked (`topicName`; Omni's REST pick-topic says `topicId`), or `None`."""
    payload = _payload(result)
    if not isinstance(payload, Mapping):
        return None
    for field in ("topicName", "topicId", "topic"):
        value = payload.get(field)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


@dataclass(frozen=True, slots=True)
class _Pin:
    model_id: str | None
    """The model to pin, or `None`: several (or none) listed, or the listing failed."""


class ModelPins:
    """The auto-pinned model of each unpinned session key: asked of `pickModel` once, cached, single flight.

    Args:
        pool: the session pool whose sessions list the models (as each key's own user).
        ttl: seconds a listing is reused (the identity TTL: a user's access changes on that scale).
        max_entries: keys remembered at most.
    """

    def __init__(self, pool: SessionPool, *, ttl: float, max_entries: int) -> None:
        self._pool = pool
        self._ttl = ttl
        self._pins: BoundedMap[SessionKey, _Pin] = BoundedMap(max_entries, ttl=ttl)
        self._flights: dict[SessionKey, asyncio.Future[str | None]] = {}

    def __repr__(self) -> str:
        return f"<ModelPins cached={len(self._pins)} in_flight={len(self._flights)}>"

    async def model_for(self, key: SessionKey) -> str | None:
        """The one model `key`'s user may see, or `None` (let the LLM pick); `key` must pin no model."""
        if key.model_id is not None:
            raise ValueError("the key already pins a model")
        pin = self._pins.get(key)
        if pin is not None:
            return pin.model_id
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._ask(key))
            self._flights[key] = flight
            flight.add_done_callback(lambda _: self._flights.pop(key, None))
        # Shielded: one caller giving up must not cancel the listing other callers wait for.
        return await asyncio.shield(flight)

    def forget_expired(self) -> int:
        return self._pins.expire()

    async def _ask(self, key: SessionKey) -> str | None:
        try:
            tools = await self._pool.list_tools(key)
            if MODEL_LISTING_TOOL not in {tool.name for tool in tools}:
                self._pins.put(key, _Pin(None))
                return None
            ids = listed_model_ids(await self._pool.call_tool(key, MODEL_LISTING_TOOL, {}))
        except OmniError as exc:
            log.info("pickModel for %r failed (%s): the model is not pinned", key, exc)
            self._pins.put(key, _Pin(None), ttl=min(self._ttl, FAILURE_TTL_SECONDS))
            return None
        model = ids[0] if ids is not None and len(set(ids)) == 1 else None
        self._pins.put(key, _Pin(model))
        if model is not None:
            log.debug("%r sees one model: pinned", key)
            self._pool.close_session(key)  # the unpinned session only served this listing
        return model
