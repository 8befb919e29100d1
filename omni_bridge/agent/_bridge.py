"""`Bridge`: the Python API a chatbot runtime embeds. One object owns every long-lived part.

```python
async with Bridge.from_settings() as bridge:
    async for event in bridge.ask(user="cust-42", question="revenue by region"):
        ...
    message = await bridge.answer(user="cust-42", question="and by month?", conversation_id=cid)
```

A bridge is an `OmniConnection` (target, REST client, session pool, identity resolver), engines and a store.
It resolves the runtime's user to an Omni identity (cached), binds each conversation to that identity for
life, and hands the question to an engine: `claude` (the agent loop over Omni's MCP tools, through the
shared session pool) or `omni` (Omni's own agent through AI Jobs, needing no LLM key). With no Omni
configured (`OMNI_BASE_URL` unset) the connection starts the embedded sandbox in-process, so it runs anywhere.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx2

from omni_bridge._locks import KeyedLocks
from omni_bridge.agent._telemetry import AnswerTelemetry
from omni_bridge.agent.connection import OmniConnection
from omni_bridge.agent.conversation import Conversation
from omni_bridge.agent.conversation_store import ConversationStore, MemoryConversationStore
from omni_bridge.agent.engines import Engine, JobOptions, OmniEngine, Run
from omni_bridge.agent.events import AssistantMessage, ErrorEvent, Event, FinalMessage, UsageLedger, new_message_id
from omni_bridge.agent.identity import EndUser, OmniIdentity
from omni_bridge.config import Settings, load_settings
from omni_bridge.exceptions import ConfigError, OmniError
from omni_bridge.prompts import system_prompt
from omni_bridge.sandbox import Sandbox
from omni_bridge.tools import OmniRestClient, SessionPool, shared_ssl_context
from omni_bridge.types import EngineName

if TYPE_CHECKING:
    import anthropic

    from omni_bridge.agent.engines import ClaudeEngine

__all__ = ["Bridge"]

log = logging.getLogger("omni_bridge.bridge")

LEDGER_CONVERSATIONS = 1000
"""Conversations whose per-turn usage the bridge's ledger keeps (the most recently used ones)."""
LEDGER_TURNS = 1000
"""Turns the ledger keeps of each of them (the last ones; numbers and totals still count all)."""


@dataclass
class _Parts:
    """What a running bridge holds; built by `__aenter__`, released by `aclose`."""

    connection: OmniConnection
    store: ConversationStore
    engines: dict[EngineName, Engine] = field(default_factory=dict)


class Bridge:
    """Answers questions about Omni data for many end users, each with their own permissions.

    Build it with `Bridge.from_settings()` (or the constructor, to pass your own store, Anthropic client or
    `OmniConnection`), then use it as an async context manager. One bridge serves any number of users and conversations
    concurrently; questions within one conversation are answered one at a time.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: ConversationStore | None = None,
        anthropic_client: anthropic.AsyncAnthropic | None = None,
        connection: OmniConnection | None = None,
    ) -> None:
        """Describe the bridge; nothing is opened before `async with`.

        Args:
            settings: the effective settings.
            store: where conversations are kept; default: in memory (closed with the bridge).
            anthropic_client: the client of the `claude` engine; default: one built from the settings.
            connection: the Omni to act on; default: `OmniConnection.from_settings(settings)`, opened and
                closed with the bridge. One given here is opened by the bridge if it is not open yet (and then
                closed with it); one already open is left to its owner.
        """
        self.settings = settings
        self._store = store
        self._anthropic = anthropic_client
        self._connection = connection
        self._parts: _Parts | None = None
        self._stack = contextlib.AsyncExitStack()
        self._locks = KeyedLocks()
        self.ledger = UsageLedger(max_conversations=LEDGER_CONVERSATIONS, max_turns=LEDGER_TURNS)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **options: Any) -> Bridge:
        """A bridge configured from the environment (or `settings`); `options` go to the constructor."""
        return cls(settings or load_settings(), **options)

    def __repr__(self) -> str:
        where = "sandbox" if self.sandbox else (self._parts.connection.base_url if self._parts else "not started")
        return f"<Bridge {where} engine={self.settings.effective_engine()}>"

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def __aenter__(self) -> Bridge:
        if self._parts is not None:
            raise RuntimeError("this Bridge is already running")
        settings = self.settings
        stack = self._stack
        try:
            connection = self._connection or OmniConnection.from_settings(settings)
            if not connection.is_open:
                await stack.enter_async_context(connection)
            store = self._store or MemoryConversationStore()
            if self._store is None:
                stack.push_async_callback(store.aclose)
            self._parts = _Parts(connection=connection, store=store)
            self._parts.engines["omni"] = OmniEngine(
                connection.rest,
                artifacts=store.artifacts,
                model_id=settings.omni_model_id,
                topic_name=settings.omni_topic_name,
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
        """Close the store (if the bridge made it), the Anthropic client, and the connection if the bridge opened it."""
        self._parts = None
        await self._stack.aclose()

    def _claude_engine(self, stack: contextlib.AsyncExitStack) -> ClaudeEngine:
        # The `anthropic` SDK takes a second or more to import: loaded only when a bridge answers with Claude.
        import anthropic

        from omni_bridge.agent.engines import ClaudeEngine

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
            system=functools.partial(
                _system_for_tools, model_id=settings.omni_model_id, topic_name=settings.omni_topic_name
            ),
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
    def connection(self) -> OmniConnection:
        """The Omni this bridge acts on: target, REST client, session pool and identity resolver."""
        return self._running.connection

    @property
    def pool(self) -> SessionPool:
        return self._running.connection.pool

    @property
    def rest(self) -> OmniRestClient:
        """The REST client of the Omni this bridge talks to (shared; do not close it)."""
        return self._running.connection.rest

    @property
    def sandbox(self) -> Sandbox | None:
        """The embedded sandbox, when `OMNI_BASE_URL` is unset (started by `__aenter__`)."""
        return self._parts.connection.sandbox if self._parts is not None else None

    def engine_names(self) -> list[str]:
        """The engines this bridge can answer with (`claude` needs an Anthropic key)."""
        return sorted(self._running.engines)

    # --- asking ----------------------------------------------------------------------------------------------

    async def resolve(self, user: str | EndUser) -> OmniIdentity:
        """The Omni identity of `user` (cached); an `EndUser` with a profile is upserted first."""
        return await self._running.connection.resolve(user)

    async def ask(
        self,
        *,
        user: str | EndUser,
        question: str,
        conversation_id: str | None = None,
        engine: EngineName | None = None,
        save: Callable[[Conversation], Awaitable[None]] | None = None,
        job_options: JobOptions | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Answer `question` for `user`, yielding events; the last is a `FinalMessage` (unless cancelled).

        Args:
            user: the runtime's user key, or an `EndUser` with the profile to upsert.
            question: what the user asked.
            conversation_id: continue this conversation (or start one with this id); `None` starts a new one,
                whose id every event carries.
            engine: `claude` or `omni` for a new conversation (default: `BRIDGE_ENGINE`); an existing
                conversation keeps the engine it started with.
            save: persists the conversation after each turn of this run, instead of the store's `save` (e.g.
                to write it in one transaction with other records).
            job_options: an AI job's branch and attachments, for the `omni` engine to pass on to Omni.

        Raises:
            IdentityError: the user cannot be resolved, or the conversation belongs to another user.
            ConfigError: the `claude` engine was asked for without an Anthropic key.
        """
        if not question.strip():
            raise ValueError("question must not be empty")
        user_key = user if isinstance(user, str) else user.external_id
        telemetry = AnswerTelemetry(user_key, engine or self.settings.effective_engine())
        answer = self._ask(user, question, conversation_id, engine, save, job_options, telemetry)
        async with contextlib.aclosing(telemetry.follow(answer)) as events:  # the answer's span and metrics
            async for event in events:
                yield event

    async def _ask(
        self,
        user: str | EndUser,
        question: str,
        conversation_id: str | None,
        engine: EngineName | None,
        save: Callable[[Conversation], Awaitable[None]] | None,
        job_options: JobOptions | None,
        telemetry: AnswerTelemetry,
    ) -> AsyncGenerator[Event, None]:
        parts = self._running
        identity = await self.resolve(user)
        conversation = await self._conversation(identity, conversation_id, engine)
        telemetry.describe(engine=conversation.engine, conversation_id=conversation.id)
        save = save or parts.store.save
        async with self._locks.hold(conversation.id):
            run = Run(
                conversation=conversation,
                question=question,
                response_id=new_message_id(),
                toolset=await parts.connection.toolset(identity, artifacts=parts.store.artifacts),
                save=save,
                ledger=self.ledger,
                job_options=job_options,
            )
            engine_impl = parts.engines[conversation.engine]
            try:
                async with contextlib.aclosing(engine_impl.run(run)) as events:
                    async for event in events:
                        yield event
            except OmniError as exc:
                # The engine could not reach Omni at all (e.g. no session could be opened): say so, keep the rest.
                log.warning("run %s failed: %s", run.response_id, exc)
                await save(conversation)
                text = f"Omni could not be reached: {exc}"
                yield ErrorEvent(**run.stamp(), error_type=exc.error_type, message=text, retryable=exc.retryable)
                message = AssistantMessage(id=run.response_id, conversation_id=conversation.id, outcome="errored")
                yield FinalMessage(**run.stamp(), message=message)

    async def answer(
        self,
        *,
        user: str | EndUser,
        question: str,
        conversation_id: str | None = None,
        engine: EngineName | None = None,
        save: Callable[[Conversation], Awaitable[None]] | None = None,
    ) -> AssistantMessage:
        """Answer `question` and return the final message (the events are consumed here)."""
        final: AssistantMessage | None = None
        async with contextlib.aclosing(
            self.ask(user=user, question=question, conversation_id=conversation_id, engine=engine, save=save)
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


def _system_for_tools(tools: list[str], *, model_id: str | None, topic_name: str | None) -> str:
    """The system prompt for a user with these tools (a Viewer has no getData), as the claude engine asks for it."""
    return _system_prompt(tuple(tools), model_id, topic_name)


@functools.lru_cache(maxsize=256)
def _system_prompt(tools: tuple[str, ...], model_id: str | None, topic_name: str | None) -> str:
    # Asked for on every turn; the few tool lists a deployment's roles give are built once each.
    return system_prompt(model_id=model_id, topic_name=topic_name, tools=tools)
