"""`ConsoleSession`: one console's bridge, end user, engine and conversation, shared by `chat` and `ask`.

The session turns the console's state into `Bridge.ask` calls and hands the events to an `AnswerView`.
It also holds the start-up rules of the console: the sandbox has a default user (`alice`), a real Omni has
none; and a conversation given with `--conversation` is resumed only for the user it is bound to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from rich.text import Text

from omni_bridge.agent import ActionButton, Bridge, Conversation, Usage, new_conversation_id
from omni_bridge.cli.console.render import format_number
from omni_bridge.cli.console.turns import Turn, turns
from omni_bridge.cli.console.view import AnswerView, ResultTable
from omni_bridge.config import Settings
from omni_bridge.exceptions import ConfigError, IdentityError
from omni_bridge.stores import open_store
from omni_bridge.types import EngineName

__all__ = [
    "SANDBOX_USER",
    "ConsoleSession",
    "check_engine",
    "choose_user",
    "open_bridge",
]

SANDBOX_USER = "alice"
"""The end user the console acts for on the sandbox when `--user` is not given (a demo user, region West)."""
TABLE_ROWS = 15
"""Rows of a result table shown under an answer."""
ENGINE_NOTES = {"claude": "Claude over Omni's MCP tools", "omni": "Omni's own AI"}
LISTED_CONVERSATIONS = 20
"""Conversations `/conversations` lists at most, newest first."""


def choose_user(settings: Settings, user: str | None) -> str:
    """The end user to act for: `user`, else `alice` on the sandbox.

    Raises:
        ConfigError: no `user` while a real Omni is configured (there is no default user there).
    """
    if user is not None:
        if not user.strip():
            raise ConfigError("--user: an end user's external id is required, not an empty string")
        return user.strip()
    if settings.uses_sandbox:
        return SANDBOX_USER
    raise ConfigError(
        "--user is required with a real Omni (OMNI_BASE_URL is set): there is no default user; "
        "pass the end user's external id, e.g. --user cust-42"
    )


def check_engine(settings: Settings, engine: EngineName | None) -> EngineName:
    """The engine new conversations use: `engine`, else the configured one.

    Raises:
        ConfigError: `claude` without an Anthropic key.
    """
    chosen: EngineName = engine or settings.effective_engine()
    if chosen == "claude" and settings.anthropic_api_key is None:
        raise ConfigError("ANTHROPIC_API_KEY: the claude engine needs an Anthropic API key (or use --engine omni)")
    return chosen


@contextlib.asynccontextmanager
async def open_bridge(settings: Settings) -> AsyncIterator[Bridge]:
    """A running bridge whose conversations persist in the configured store.

    That is the store `omni-bridge serve` uses too: `BRIDGE_STORE_URL`, else one file in `BRIDGE_DATA_DIR`.
    """
    store = open_store(settings)
    async with store, Bridge(settings, store=store) as bridge:
        yield bridge


@dataclass
class ConsoleSession:
    """Who the console acts for, with which engine, in which conversation; asks and renders answers.

    Args:
        bridge: the running bridge.
        user: the end user's external id.
        engine: the engine for new conversations.
        make_view: builds the view of one answer.
    """

    bridge: Bridge
    user: str
    engine: EngineName
    make_view: Callable[[], AnswerView]
    conversation_id: str = field(default_factory=new_conversation_id)
    resumed: bool = False
    """True when the conversation existed before this session."""
    follow_ups: list[ActionButton] = field(default_factory=list)
    """The follow-ups of the last answer, numbered from 1."""
    seen_users: set[str] = field(default_factory=set)
    """End users this console has acted for (completed after `/user`)."""
    listed: list[Conversation] = field(default_factory=list)
    """What the last `/conversations` showed, numbered from 1 (what `/resume N` picks from)."""

    def __post_init__(self) -> None:
        self.seen_users.add(self.user)

    def user_names(self) -> list[str]:
        """Names to complete after `/user`: the sandbox's demo users (on the sandbox) and the users seen here."""
        names = set(self.seen_users)
        if self.bridge.sandbox is not None:
            from omni_bridge.sandbox import DEMO_EMBED_USERS  # loaded already: the bridge runs the sandbox

            names.update(external_id for external_id, *_ in DEMO_EMBED_USERS)
        return sorted(names)

    @property
    def where(self) -> str:
        """The Omni the bridge talks to, for a header line."""
        sandbox = self.bridge.sandbox
        if sandbox is not None:
            return f"embedded sandbox ({sandbox.url})"
        return str(self.bridge.settings.omni_base_url).rstrip("/")

    @property
    def prompt(self) -> str:
        return f"{self.user}@{self.engine}> "

    def describe(self) -> str:
        """`engine omni (Omni's own AI) · user alice`: who answers, for whom."""
        return f"engine {self.engine} ({ENGINE_NOTES[self.engine]}) · user {self.user}"

    async def start(self, conversation_id: str | None = None) -> None:
        """Check the user exists, and resume `conversation_id` when given (else a new conversation starts).

        Raises:
            IdentityError: the user is unknown to Omni, or the conversation is not this user's.
            OmniError: Omni could not be reached.
        """
        identity = await self.bridge.resolve(self.user)
        if conversation_id is None:
            return
        self.conversation_id = conversation_id
        found = await self.bridge.store.get(conversation_id)
        if found is None:
            return
        if not found.is_bound_to(identity):
            same_user = found.identity.user_id == identity.user_id and found.identity.external_id == self.user
            if same_user and self.bridge.sandbox is not None:
                raise IdentityError(
                    f"conversation {conversation_id!r} was started on another Omni (an earlier embedded sandbox: "
                    "each run listens on a new port), so it cannot be continued here; start a new one"
                )
            raise IdentityError(f"there is no conversation {conversation_id!r} for user {self.user!r}")
        self.engine = found.engine
        self.resumed = True

    def new_conversation(self) -> None:
        self.conversation_id = new_conversation_id()
        self.resumed = False
        self.follow_ups = []

    async def switch_user(self, user: str) -> None:
        """Act for `user` from now on, in a new conversation.

        Raises:
            IdentityError: Omni has no such user (the session keeps the current one).
        """
        await self.bridge.resolve(user)
        self.user = user
        self.seen_users.add(user)
        self.listed = []
        self.new_conversation()

    def switch_engine(self, engine: EngineName) -> None:
        """Answer with `engine` from now on, in a new conversation (a conversation keeps its engine).

        Raises:
            ConfigError: the engine is not available (`claude` needs an Anthropic key).
        """
        if engine not in self.bridge.engine_names():
            raise ConfigError(
                f"ANTHROPIC_API_KEY: the {engine} engine needs an Anthropic API key; "
                f"available here: {', '.join(self.bridge.engine_names())}"
            )
        self.engine = engine
        self.new_conversation()

    async def ask(self, question: str) -> AnswerView:
        """Answer `question` in the current conversation, drawing it as it comes; returns the finished view.

        Raises:
            IdentityError, ConfigError, OmniError: the question could not be put to an engine at all.
            asyncio.CancelledError: the answer was stopped (the view was closed first).
        """
        view = self.make_view()
        ticker = asyncio.create_task(_tick(view)) if view.live else None
        try:
            async with contextlib.aclosing(
                self.bridge.ask(
                    user=self.user, question=question, conversation_id=self.conversation_id, engine=self.engine
                )
            ) as events:
                async for event in events:
                    view.handle(event)
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            view.close()
        view.render_result(await self._result_table(view))
        self.follow_ups = view.follow_ups()
        return view

    async def _result_table(self, view: AnswerView) -> ResultTable | None:
        """The rows of the answer's last table result, when there is one and no chart to draw."""
        result_id = view.result_id()
        if result_id is None or view.chart() is not None:
            return None
        identity = await self.bridge.resolve(self.user)
        artifact = await self.bridge.store.artifacts.get(result_id, owner=identity.user_id)
        if artifact is None or not artifact.is_table:
            return None
        return ResultTable(
            columns=list(artifact.columns),
            rows=artifact.rows(0, TABLE_ROWS),
            total=artifact.total_row_count or artifact.row_count,
        )

    async def history(self) -> list[Turn]:
        """This conversation's turns so far, as stored (earlier sessions included); none for a new one."""
        stored = await self.bridge.store.get(self.conversation_id)
        return turns(stored) if stored is not None else []

    async def conversations(self) -> tuple[list[Conversation], int]:
        """This user's conversations on this Omni, newest first (remembered for `/resume N`), and how many
        more the store has for the same external id on another Omni (an earlier sandbox: not resumable)."""
        identity = await self.bridge.resolve(self.user)
        stored = await self.bridge.store.list(external_id=self.user, limit=LISTED_CONVERSATIONS)
        self.listed = [conversation for conversation in stored if conversation.is_bound_to(identity)]
        return self.listed, len(stored) - len(self.listed)

    async def resume(self, number: int) -> list[Turn]:
        """Continue conversation `number` of the last `/conversations`; returns its turns.

        Raises:
            ConfigError: no such number (or `/conversations` was not run yet).
            IdentityError: the conversation is not this user's on this Omni.
        """
        if not 1 <= number <= len(self.listed):
            hint = f"pick 1 to {len(self.listed)}" if self.listed else "run /conversations first"
            raise ConfigError(f"/resume {number}: there is no conversation {number} in the list; {hint}")
        chosen = self.listed[number - 1]
        previous = (self.conversation_id, self.engine, self.resumed)
        try:
            await self.start(chosen.id)
        except IdentityError:
            self.conversation_id, self.engine, self.resumed = previous
            raise
        self.follow_ups = []
        return turns(chosen)

    async def usage_lines(self) -> list[Text | str]:
        """What `/usage` prints: the conversation's tokens by kind, as stored (earlier sessions included)."""
        stored = await self.bridge.store.get(self.conversation_id)
        total = stored.usage if stored is not None else self.bridge.ledger.total(self.conversation_id)
        requests = len(self.bridge.ledger.turns(self.conversation_id))
        lines: list[Text | str] = [
            Text(f"Usage of conversation {self.conversation_id} (engine {self.engine}):", style="bold"),
            f"  input tokens        {format_number(total.input_tokens):>12}",
            f"  output tokens       {format_number(total.output_tokens):>12}",
            f"  cache read tokens   {format_number(total.cache_read_input_tokens):>12}",
            f"  cache write tokens  {format_number(total.cache_creation_input_tokens):>12}",
        ]
        if self.engine == "claude":
            lines.append(f"  Claude requests in this session: {requests}")
        elif total == Usage():
            lines.append("  (the omni engine answers with Omni's own AI: no LLM tokens are counted here)")
        return lines


async def _tick(view: AnswerView) -> None:
    """Redraw the view's status line ten times a second, so the elapsed time moves while nothing arrives."""
    while True:
        await asyncio.sleep(0.1)
        view.tick()
