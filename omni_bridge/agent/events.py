"""Typed agent events, the content parts of a finished message, and token usage.

One event stream feeds every consumer (console, HTTP/SSE, MCP proxy, framework adapters, stores), so the
events are one pydantic discriminated union on `type`: `EventAdapter` turns any of them into JSON and back
without hand-written dicts. A finished assistant message is a list of content parts in the shape of a
thread-centric assistant API (`text`, `chart`, `chart_page`, `suggested_actions`, `structured_action`,
`provenance`, `custom`; `thinking` only while a response is still being polled).

Events carry only what a consumer may show: no keys, tokens or headers ever appear in these fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias
from uuid import uuid4

from pydantic import (
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    TypeAdapter,
    model_validator,
)

from omni_bridge.exceptions import ErrorType, ForeignErrorCode
from omni_bridge.tools import DataChart, QueryProvenance

if TYPE_CHECKING:
    from anthropic.types import MessageDeltaUsage, Usage as AnthropicUsage

ApiUsage: TypeAlias = "AnthropicUsage | MessageDeltaUsage | Mapping[str, Any]"
"""Usage as the `anthropic` SDK gives it (`Message.usage`), or its JSON dict."""

__all__ = [
    "MAX_CHART_PAGE_CHARS",
    "ActionButton",
    "ApiUsage",
    "AssistantMessage",
    "ChartPagePart",
    "ChartPageReady",
    "ChartPart",
    "ChartReady",
    "ContentPart",
    "ContentPartAdapter",
    "CustomPart",
    "ErrorEvent",
    "Event",
    "EventAdapter",
    "FinalMessage",
    "Progress",
    "ProvenancePart",
    "QueryProvenance",
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
    "new_message_id",
]


def new_message_id() -> str:
    """A fresh id for an assistant message."""
    return "msg_" + uuid4().hex[:24]


class _Frozen(BaseModel):
    """Immutable model whose repr leaves out fields still at their default."""

    model_config = ConfigDict(frozen=True)

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        fields = type(self).model_fields
        for name, value in super().__repr_args__():
            field = fields.get(name or "")
            if field is None or field.is_required() or field.default_factory is not None or value != field.default:
                yield name, value


# Usage ---------------------------------------------------------------------------------------------------------


class Usage(_Frozen):
    """Tokens billed by the Messages API, as the API reports them; instances add up with `+`."""

    input_tokens: NonNegativeInt = 0
    """Uncached input tokens."""
    output_tokens: NonNegativeInt = 0
    """Generated tokens, thinking included."""
    cache_read_input_tokens: NonNegativeInt = 0
    """Input tokens read from the prompt cache."""
    cache_creation_input_tokens: NonNegativeInt = 0
    """Input tokens written to the prompt cache."""

    def __add__(self, other: object) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens + other.cache_creation_input_tokens,
        )

    @classmethod
    def from_api(cls, usage: ApiUsage) -> Usage:
        """Read an `anthropic` SDK usage object, or its JSON dict; missing or `None` counts read as 0.

        Pass the usage of a finished message (`Message.usage`), once per request: the counts in streaming
        `message_delta` events are cumulative, not increments.
        """
        names = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
        if isinstance(usage, Mapping):
            counts = {name: usage.get(name) or 0 for name in names}
        else:
            counts = {name: getattr(usage, name, None) or 0 for name in names}
        return cls.model_validate(counts)


class TurnUsage(_Frozen):
    """The usage of one request to the Messages API within a conversation."""

    turn: PositiveInt
    """1 for the conversation's first request in this ledger, then 2, 3, …"""
    usage: Usage


@dataclasses.dataclass(slots=True)
class _Tally:
    """One conversation's turns (the last `max_turns` of them), how many were recorded, and their sum."""

    turns: list[TurnUsage] = dataclasses.field(default_factory=list)
    counted: int = 0
    total: Usage = dataclasses.field(default_factory=Usage)


class UsageLedger:
    """Usage per turn and in total, for each conversation.

    ```python
    ledger = UsageLedger()
    turn = ledger.add(conversation_id, message.usage)
    report = UsageReport(conversation_id=conversation_id, turn=turn, total=ledger.total(conversation_id))
    ```

    Args:
        max_conversations: keep only the most recently used conversations (a long-running server answers for
            an unbounded number); the default keeps all. A conversation's durable total is its stored `usage`.
        max_turns: keep only the last turns of each conversation; turn numbers and totals still count all.
    """

    def __init__(self, *, max_conversations: int | None = None, max_turns: int | None = None) -> None:
        if (max_conversations is not None and max_conversations < 1) or (max_turns is not None and max_turns < 1):
            raise ValueError("max_conversations and max_turns must be at least 1")
        self.max_conversations = max_conversations
        self.max_turns = max_turns
        self._tallies: dict[str, _Tally] = {}
        """In order of last use (a dict keeps insertion order; a used entry is moved to the end)."""

    def __repr__(self) -> str:
        turns = sum(len(tally.turns) for tally in self._tallies.values())
        return f"<UsageLedger conversations={len(self._tallies)} turns={turns}>"

    def __len__(self) -> int:
        return len(self._tallies)

    def add(self, conversation_id: str, usage: Usage | ApiUsage) -> TurnUsage:
        """Record the next turn of `conversation_id` and return it.

        Args:
            conversation_id: the conversation the request belonged to.
            usage: our `Usage`, an `anthropic` SDK usage object, or its JSON dict (see `Usage.from_api`).
        """
        counted = usage if isinstance(usage, Usage) else Usage.from_api(usage)
        tally = self._tallies.pop(conversation_id, None) or _Tally()
        self._tallies[conversation_id] = tally
        tally.counted += 1
        turn = TurnUsage(turn=tally.counted, usage=counted)
        tally.turns.append(turn)
        if self.max_turns is not None:
            del tally.turns[: -self.max_turns]
        tally.total = tally.total + counted
        if self.max_conversations is not None:
            while len(self._tallies) > self.max_conversations:
                del self._tallies[next(iter(self._tallies))]
        return turn

    def turns(self, conversation_id: str) -> list[TurnUsage]:
        """The turns kept for `conversation_id`, first to last."""
        tally = self._tallies.get(conversation_id)
        return list(tally.turns) if tally is not None else []

    def total(self, conversation_id: str) -> Usage:
        """The sum of the turns recorded for `conversation_id` (zero when there are none)."""
        tally = self._tallies.get(conversation_id)
        return tally.total if tally is not None else Usage()


# Content parts -------------------------------------------------------------------------------------------------


class ActionButton(_Frozen):
    """A button the user can press to ask a follow-up question."""

    model_config = ConfigDict(frozen=True, serialize_by_alias=True)

    button_id: str = Field(validation_alias=AliasChoices("buttonId", "button_id"), serialization_alias="buttonId")
    """Stable id of the button within its message (`buttonId` on the wire)."""
    label: str
    """What the button says."""
    prompt: str
    """The message sent as the user's when the button is pressed."""


class TextPart(_Frozen):
    type: Literal["text"] = "text"
    text: str
    partial: bool = Field(default=False, exclude_if=lambda partial: not partial)
    """True when this text is the start of an answer that broke off (the model's stream was cut after the user
    saw it): the rest never arrived. Serialised only when true, so complete text parts look as they always did."""


class ThinkingPart(_Frozen):
    """The model's visible reasoning: shown while a response is polled, never kept in a finished message."""

    type: Literal["thinking"] = "thinking"
    text: str


class ChartPart(_Frozen):
    type: Literal["chart"] = "chart"
    chart: DataChart
    result_id: str | None = None
    """The artifact holding the full table the chart was derived from, when there is one."""


MAX_CHART_PAGE_CHARS = 200_000
"""The longest chart page kept: Omni refuses pages over 200,000 characters."""


class ChartPagePart(_Frozen):
    """Omni's interactive chart page of a finished AI job (`getJobChartPage`), fetched by the bridge's own code.

    `html` is a whole page from Omni, untrusted: show it only in a sandboxed frame with scripts and no same
    origin (`<iframe sandbox="allow-scripts" srcdoc=…>`), never inline in the host page.
    """

    type: Literal["chart_page"] = "chart_page"
    job_id: str
    """The AI job whose answer the page charts."""
    html: str = Field(max_length=MAX_CHART_PAGE_CHARS)
    title: str | None = None
    """What the job was asked, when known."""


class SuggestedActionsPart(_Frozen):
    type: Literal["suggested_actions"] = "suggested_actions"
    actions: list[ActionButton]


class StructuredActionPart(_Frozen):
    """An action the client renders natively, e.g. `open_in_omni` with Omni's chat URL."""

    type: Literal["structured_action"] = "structured_action"
    action: str
    """What to do: `open_in_omni`, or a name the embedding application understands."""
    url: str | None = None
    """Where the action leads, for link-like actions."""
    payload: dict[str, JsonValue] = Field(default_factory=dict)
    """Anything else the action needs."""


class ProvenancePart(_Frozen):
    """How the answer's numbers were made: one entry per query behind it (see `QueryProvenance`).

    Only an answer that ran queries carries one; an answer with none (a docs question, an error before any
    query) has no provenance part at all, rather than an empty one, so "no part" always means "no query".
    """

    type: Literal["provenance"] = "provenance"
    queries: list[QueryProvenance] = Field(min_length=1)


class CustomPart(_Frozen):
    """Application-defined content, passed through untouched."""

    type: Literal["custom"] = "custom"
    name: str
    data: JsonValue = None


ContentPart = Annotated[
    TextPart
    | ThinkingPart
    | ChartPart
    | ChartPagePart
    | SuggestedActionsPart
    | StructuredActionPart
    | ProvenancePart
    | CustomPart,
    Field(discriminator="type"),
]
"""Any content part, told apart by `type`."""

ContentPartAdapter: TypeAdapter[ContentPart] = TypeAdapter(ContentPart)
"""Validates and serialises a single `ContentPart` (e.g. `ContentPartAdapter.validate_json(raw)`)."""


class AssistantMessage(_Frozen):
    """A finished assistant message: what the user sees once a response is over."""

    id: str = Field(default_factory=new_message_id)
    conversation_id: str
    created_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    parts: list[ContentPart] = Field(default_factory=list)
    outcome: Literal["completed", "errored", "canceled"] = "completed"
    """How the response ended; an errored or canceled message keeps what was produced before the end."""
    usage: Usage | None = None
    """Tokens the response cost, when an LLM produced it."""

    @model_validator(mode="after")
    def _no_thinking(self) -> AssistantMessage:
        if any(isinstance(part, ThinkingPart) for part in self.parts):
            raise ValueError("a finished message carries no `thinking` parts (they belong to polled responses)")
        return self

    @property
    def text(self) -> str:
        """The text parts joined, for consumers that show plain text."""
        return "".join(part.text for part in self.parts if isinstance(part, TextPart))


# Events --------------------------------------------------------------------------------------------------------


class _Event(_Frozen):
    conversation_id: str
    """The conversation the event belongs to."""
    response_id: str | None = None
    """The response (one run of an engine) that produced the event, when the producer has one."""


class TextDelta(_Event):
    """More of the answer's text."""

    type: Literal["text_delta"] = "text_delta"
    text: str


class ThinkingDelta(_Event):
    """More of the model's visible reasoning."""

    type: Literal["thinking_delta"] = "thinking_delta"
    text: str


class ToolCallStarted(_Event):
    type: Literal["tool_call_started"] = "tool_call_started"
    call_id: str
    """The model's `tool_use` id; the matching `ToolCallFinished` carries the same."""
    tool: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    """The input the model gave the tool."""


class ToolCallFinished(_Event):
    type: Literal["tool_call_finished"] = "tool_call_finished"
    call_id: str
    tool: str
    is_error: bool
    """True when the tool failed; the model was told so and may try again."""
    summary: str
    """One line saying what came back (e.g. `42 rows`), for progress displays."""
    result_id: str | None = None
    """The artifact holding the full result, when one was kept."""
    row_count: NonNegativeInt | None = None
    """Rows in the result, when it was a table."""
    elapsed_ms: NonNegativeFloat
    """Wall time the call took."""


class ChartReady(_Event):
    """A chart derived from a tool result, ready to draw."""

    type: Literal["chart_ready"] = "chart_ready"
    chart: DataChart
    result_id: str | None = None
    """The artifact the chart was derived from."""


class ChartPageReady(_Event):
    """Omni's chart page of a finished AI job was fetched; the final message carries it as a `ChartPagePart`."""

    type: Literal["chart_page_ready"] = "chart_page_ready"
    page: ChartPagePart


class SuggestedActions(_Event):
    """Follow-up questions to offer as buttons."""

    type: Literal["suggested_actions"] = "suggested_actions"
    actions: list[ActionButton]


class Progress(_Event):
    """A status line from an engine that does not stream text (Omni's own agent)."""

    type: Literal["progress"] = "progress"
    message: str
    iteration: NonNegativeInt | None = None
    """The engine's step counter, when it reports one."""


class UsageReport(_Event):
    """Tokens of the request just finished, and the conversation's running total."""

    type: Literal["usage_report"] = "usage_report"
    turn: TurnUsage
    total: Usage


class FinalMessage(_Event):
    """The response is over; `message` is what to keep and show. Always the last event of a response."""

    type: Literal["final_message"] = "final_message"
    message: AssistantMessage


class ErrorEvent(_Event):
    """The response failed; a `FinalMessage` with outcome `errored` follows."""

    type: Literal["error"] = "error"
    error_type: ErrorType | ForeignErrorCode
    """A short machine-readable kind, e.g. `overloaded_error`, `stream_interrupted`, `omni_unavailable`: one of
    `ErrorType`, or the code Omni gave a failed AI job (e.g. `QUERY_GENERATION_ERROR`), passed on as it came."""
    message: str
    """What went wrong, fit to show the end user."""
    retryable: bool
    """True when asking again later may succeed."""


Event = Annotated[
    TextDelta
    | ThinkingDelta
    | ToolCallStarted
    | ToolCallFinished
    | ChartReady
    | ChartPageReady
    | SuggestedActions
    | Progress
    | UsageReport
    | FinalMessage
    | ErrorEvent,
    Field(discriminator="type"),
]
"""Any agent event, told apart by `type`."""

EventAdapter: TypeAdapter[Event] = TypeAdapter(Event)
"""Validates and serialises a single `Event`: `EventAdapter.validate_json(event.model_dump_json()) == event`."""
