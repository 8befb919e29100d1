"""`Bridge`: the Python API a chatbot runtime embeds. One object owns every long-lived part.

```python
async with Bridge.from_settings() as bridge:
    async for event in bridge.ask(user="cust-42", question="revenue by region"):
        ...
    message = await bridge.answer(user="cust-42", question="and by month?", conversation_id=cid)
```

It resolves the runtime's user to an Omni identity (cached), binds each conversation to that identity for
life, and hands the question to an engine: `claude` (the agent loop over Omni's MCP tools, through the
shared session pool) or `omni` (Omni's own agent through AI Jobs, needing no LLM key). With no Omni
configured (`OMNI_BASE_URL` unset) it starts the embedded sandbox in-process, so it runs anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import anthropic
import httpx2

from omni_bridge.agent._claude import ClaudeEngine
from omni_bridge.agent._omni import OmniEngine
from omni_bridge.agent._run import Run
from omni_bridge.agent.conversation import Conversation
from omni_bridge.agent.events import AssistantMessage, ErrorEvent, Event, FinalMessage, UsageLedger, new_message_id
from omni_bridge.agent.identity import IdentityResolver, OmniIdentity
from omni_bridge.agent.stores import ConversationStore, MemoryConversationStore
from omni_bridge.config import Settings, load_settings
from omni_bridge.exceptions import ConfigError, IdentityError, OmniError
from omni_bridge.prompts import system_prompt
from omni_bridge.sandbox import Sandbox
from omni_bridge.tools import SessionKey, SessionPool, ToolPolicy, Toolset
from omni_bridge.tools._rest import OmniRestClient, shared_ssl_context

__all__ = ["Bridge", "EndUser"]

log = logging.getLogger("omni_bridge.bridge")

EngineName = Literal["claude", "omni"]

SANDBOX_SERVER = "sandbox:embedded"
"""The `server` of identities on the embedded sandbox (whose URL changes from run to run)."""


@dataclass(frozen=True, slots=True)
class EndUser:
    """The runtime's own user: its key, and optionally the profile Omni should hold for it.

    With a profile (name, groups or attributes) the embed user is created or updated (generate-session) before
    it is looked up, and Omni replaces groups and attributes with what is given here; with only an
    `external_id` the user must already exist in Omni and is left as it is.
    """

    external_id: str
    name: str | None = None
    groups: tuple[str, ...] | None = None
    user_attributes: Mapping[str, Any] | None = None
    entity: str | None = None
    email: str | None = None

    @property
    def has_profile(self) -> bool:
        return any(v is not None for v in (self.name, self.groups, self.user_attributes, self.entity, self.email))


@dataclass
class _Parts:
    """What a running bridge holds; built by `__aenter__`, released by `aclose`."""

    base_url: str
    rest: OmniRestClient
    pool: SessionPool
    resolver: IdentityResolver
    store: ConversationStore
    engines: dict[str, Any] = field(default_factory=dict)


class Bridge:
    """Answers questions about Omni data for many end users, each with their own permissions.

    Build it with `Bridge.from_settings()` (or the constructor, to pass your own store or Anthropic client),
    then use it as an async context manager. One bridge serves any number of users and conversations
    concurrently; questions within one conversation are answered one at a time.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: ConversationStore | None = None,
        anthropic_client: anthropic.AsyncAnthropic | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._anthropic = anthropic_client
        self._parts: _Parts | None = None
        self._stack = contextlib.AsyncExitStack()
        self._locks: dict[str, asyncio.Lock] = {}
        self.ledger = UsageLedger()
        self.sandbox: Sandbox | None = None
        """The embedded sandbox, when `OMNI_BASE_URL` is unset (started by `__aenter__`)."""

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **options: Any) -> Bridge:
        """A bridge configured from the environment (or `settings`); `options` go to the constructor."""
        return cls(settings or load_settings(), **options)

    def __repr__(self) -> str:
        where = "sandbox" if self.sandbox else (self._parts.base_url if self._parts else "not started")
        return f"<Bridge {where} engine={self.settings.effective_engine()}>"

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def __aenter__(self) -> Bridge:
        if self._parts is not None:
            raise RuntimeError("this Bridge is already running")
        settings = self.settings
        stack = self._stack
        try:
            if settings.uses_sandbox:
                self.sandbox = Sandbox()
                base_url = await stack.enter_async_context(self.sandbox.serve())
                api_key: Any = self.sandbox.config.org_key
            else:
                if settings.omni_api_key is None:
                    raise ConfigError("OMNI_API_KEY: required when OMNI_BASE_URL is set (an organization API key)")
                base_url, api_key = str(settings.omni_base_url).rstrip("/"), settings.omni_api_key
            rest = await stack.enter_async_context(
                OmniRestClient(
                    base_url, api_key, timeout=settings.omni_timeout_seconds, max_retries=settings.omni_max_retries
                )
            )
            pool = await stack.enter_async_context(
                SessionPool.from_settings(
                    settings,
                    api_key=api_key,
                    max_sessions=settings.bridge_max_sessions,
                    idle_seconds=settings.bridge_session_idle_seconds,
                )
            )
            store = self._store or MemoryConversationStore()
            if self._store is None:
                stack.push_async_callback(store.aclose)
            # The embedded sandbox listens on a new port each run but keeps its users' ids, so identities (and
            # the conversations bound to them) name it by a stable label rather than by its URL.
            server = SANDBOX_SERVER if self.sandbox is not None else base_url
            resolver = IdentityResolver(rest, server=server, ttl_seconds=settings.bridge_identity_ttl_seconds)
            self._parts = _Parts(base_url=base_url, rest=rest, pool=pool, resolver=resolver, store=store)
            self._parts.engines["omni"] = OmniEngine(
                rest, artifacts=store.artifacts, model_id=settings.omni_model_id, topic_name=settings.omni_topic_name
            )
            if settings.anthropic_api_key is not None or self._anthropic is not None:
                self._parts.engines["claude"] = self._claude_engine(stack)
        except BaseException:
            self._parts = None
            await stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pool's sessions, the store (if the bridge made it), the clients and the sandbox."""
        self._parts = None
        await self._stack.aclose()

    def _claude_engine(self, stack: contextlib.AsyncExitStack) -> ClaudeEngine:
        settings = self.settings
        client = self._anthropic
        if client is None:
            assert settings.anthropic_api_key is not None
            client = anthropic.AsyncAnthropic(
                api_key=settings.anthropic_api_key.get_secret_value(),
                base_url=str(settings.anthropic_base_url) if settings.anthropic_base_url else None,
                timeout=settings.anthropic_timeout_seconds,
                max_retries=settings.anthropic_max_retries,
                http_client=httpx2.AsyncClient(verify=shared_ssl_context()),
            )
            stack.push_async_callback(client.close)
        return ClaudeEngine(
            client,
            model=settings.anthropic_model,
            system=system_prompt(model_id=settings.omni_model_id, topic_name=settings.omni_topic_name),
            max_tokens=settings.anthropic_max_tokens,
            max_turns=settings.bridge_max_turns,
            tool_timeout=settings.omni_tool_timeout_seconds,
            stream_idle_timeout=settings.anthropic_stream_idle_seconds,
        )

    @property
    def _running(self) -> _Parts:
        if self._parts is None:
            raise RuntimeError("the Bridge is not running; use `async with Bridge.from_settings() as bridge:`")
        return self._parts

    @property
    def store(self) -> ConversationStore:
        return self._running.store

    @property
    def pool(self) -> SessionPool:
        return self._running.pool

    @property
    def rest(self) -> OmniRestClient:
        """The REST client of the Omni this bridge talks to (shared; do not close it)."""
        return self._running.rest

    def engine_names(self) -> list[str]:
        """The engines this bridge can answer with (`claude` needs an Anthropic key)."""
        return sorted(self._running.engines)

    # --- asking ----------------------------------------------------------------------------------------------

    async def resolve(self, user: str | EndUser) -> OmniIdentity:
        """The Omni identity of `user` (cached)."""
        end_user = user if isinstance(user, EndUser) else EndUser(external_id=user)
        return await self._running.resolver.resolve(
            end_user.external_id,
            name=end_user.name,
            groups=end_user.groups,
            user_attributes=end_user.user_attributes,
            entity=end_user.entity,
            email=end_user.email,
            upsert=end_user.has_profile,
        )

    async def ask(
        self,
        *,
        user: str | EndUser,
        question: str,
        conversation_id: str | None = None,
        engine: EngineName | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Answer `question` for `user`, yielding events; the last is a `FinalMessage` (unless cancelled).

        Args:
            user: the runtime's user key, or an `EndUser` with the profile to upsert.
            question: what the user asked.
            conversation_id: continue this conversation (or start one with this id); `None` starts a new one,
                whose id every event carries.
            engine: `claude` or `omni` for a new conversation (default: `BRIDGE_ENGINE`); an existing
                conversation keeps the engine it started with.

        Raises:
            IdentityError: the user cannot be resolved, or the conversation belongs to another user.
            ConfigError: the `claude` engine was asked for without an Anthropic key.
        """
        if not question.strip():
            raise ValueError("question must not be empty")
        parts = self._running
        identity = await self.resolve(user)
        conversation = await self._conversation(identity, conversation_id, engine)
        lock = self._locks.setdefault(conversation.id, asyncio.Lock())
        async with lock:
            run = Run(
                conversation=conversation,
                question=question,
                response_id=new_message_id(),
                toolset=self._toolset(identity),
                save=parts.store.save,
                ledger=self.ledger,
            )
            engine_impl = parts.engines[conversation.engine]
            try:
                async with contextlib.aclosing(engine_impl.run(run)) as events:
                    async for event in events:
                        yield event
            except OmniError as exc:
                # The engine could not reach Omni at all (e.g. no session could be opened): say so, keep the rest.
                log.warning("run %s failed: %s", run.response_id, exc)
                await parts.store.save(conversation)
                text = f"Omni could not be reached: {exc}"
                yield ErrorEvent(**run.stamp(), error_type="omni_unavailable", message=text, retryable=True)
                message = AssistantMessage(id=run.response_id, conversation_id=conversation.id, outcome="errored")
                yield FinalMessage(**run.stamp(), message=message)

    async def answer(
        self,
        *,
        user: str | EndUser,
        question: str,
        conversation_id: str | None = None,
        engine: EngineName | None = None,
    ) -> AssistantMessage:
        """Answer `question` and return the final message (the events are consumed here)."""
        final: AssistantMessage | None = None
        async with contextlib.aclosing(
            self.ask(user=user, question=question, conversation_id=conversation_id, engine=engine)
        ) as events:
            async for event in events:
                if isinstance(event, FinalMessage):
                    final = event.message
        assert final is not None, "every run ends with a FinalMessage"
        return final

    async def _conversation(
        self, identity: OmniIdentity, conversation_id: str | None, engine: EngineName | None
    ) -> Conversation:
        store = self._running.store
        existing = await store.get(conversation_id) if conversation_id else None
        if existing is not None:
            existing.check_identity(identity)
            return existing
        name = engine or self.settings.effective_engine()
        if name not in self._running.engines:
            raise ConfigError(f"ANTHROPIC_API_KEY: the {name!r} engine needs an Anthropic API key")
        conversation = (
            Conversation(id=conversation_id, identity=identity, engine=name)
            if conversation_id
            else Conversation(identity=identity, engine=name)
        )
        await store.create(conversation)
        return conversation

    def _toolset(self, identity: OmniIdentity) -> Toolset:
        parts = self._running
        settings = self.settings
        key = SessionKey(
            server=parts.base_url + settings.omni_mcp_path,
            user_id=identity.user_id,
            model_id=settings.omni_model_id,
            topic_name=settings.omni_topic_name,
            query_all_views=settings.omni_query_all_views,
        )
        return Toolset(parts.pool, key, artifacts=parts.store.artifacts, policy=ToolPolicy.from_settings(settings))

    async def conversations(self, user: str | EndUser, *, limit: int = 50) -> list[Conversation]:
        """The user's conversations, most recent first."""
        external_id = user.external_id if isinstance(user, EndUser) else user
        return await self._running.store.list(external_id=external_id, limit=limit)

    async def conversation(self, conversation_id: str, *, user: str | EndUser) -> Conversation:
        """One conversation of `user`.

        Raises:
            IdentityError: there is no such conversation for this user (another user's is not revealed).
        """
        identity = await self.resolve(user)
        found = await self._running.store.get(conversation_id)
        if found is None or not found.is_bound_to(identity):
            raise IdentityError(f"no conversation {conversation_id!r} for this user")
        return found
