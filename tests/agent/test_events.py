"""Agent events and content parts: one discriminated union each, JSON round trips, usage that adds up."""

from __future__ import annotations

import typing
from datetime import UTC, datetime
from typing import Any

import pytest
from anthropic.types import MessageDeltaUsage, Usage as AnthropicUsage
from pydantic import ValidationError

from omni_bridge.agent.events import (
    ActionButton,
    AssistantMessage,
    ChartPagePart,
    ChartPageReady,
    ChartPart,
    ChartReady,
    ContentPart,
    ContentPartAdapter,
    CustomPart,
    ErrorEvent,
    Event,
    EventAdapter,
    FinalMessage,
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
    UsageLedger,
    UsageReport,
)
from omni_bridge.tools import QueryProvenance
from omni_bridge.tools._chart import ChartPoint, ChartSeries, DataChart

CHART = DataChart(
    title="Revenue by region",
    series=[ChartSeries(name="revenue", points=[ChartPoint(x="West", y=12.5), ChartPoint(x="East", y=None)])],
)
BUTTONS = [ActionButton(button_id="b1", label="By month", prompt="Show revenue by month")]
PAGE = ChartPagePart(job_id="job_1", html="<!doctype html><p>West</p>", title="revenue by region")
USAGE = Usage(input_tokens=100, output_tokens=20, cache_read_input_tokens=900, cache_creation_input_tokens=50)
MESSAGE = AssistantMessage(
    id="msg_1",
    conversation_id="conv_1",
    created_at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
    parts=[
        TextPart(text="West leads."),
        ChartPart(chart=CHART, result_id="res_1"),
        PAGE,
        SuggestedActionsPart(actions=BUTTONS),
        StructuredActionPart(action="open_in_omni", url="https://acme.omniapp.co/chat/1"),
        ProvenancePart(
            queries=[
                QueryProvenance(
                    tool="getData",
                    topic="order_items",
                    fields=["customers.region", "order_items.total_revenue"],
                    filters={"orders.created_at": "2026-10-01 to 2026-10-31"},
                    row_count=1,
                )
            ]
        ),
        CustomPart(name="table", data={"columns": ["region", "revenue"], "rows": [["West", 12.5]]}),
    ],
    outcome="completed",
    usage=USAGE,
)

EVENTS: list[Event] = [
    TextDelta(conversation_id="conv_1", response_id="resp_1", text="West "),
    ThinkingDelta(conversation_id="conv_1", text="The user wants revenue."),
    ToolCallStarted(conversation_id="conv_1", call_id="toolu_1", tool="getData", arguments={"query": {"limit": 5}}),
    ToolCallFinished(
        conversation_id="conv_1",
        call_id="toolu_1",
        tool="getData",
        is_error=False,
        summary="5 rows",
        result_id="res_1",
        row_count=5,
        elapsed_ms=41.5,
    ),
    ChartReady(conversation_id="conv_1", chart=CHART, result_id="res_1"),
    ChartPageReady(conversation_id="conv_1", response_id="resp_1", page=PAGE),
    SuggestedActions(conversation_id="conv_1", actions=BUTTONS),
    Progress(conversation_id="conv_1", message="Omni is querying", iteration=2),
    UsageReport(conversation_id="conv_1", turn=TurnUsage(turn=1, usage=USAGE), total=USAGE + USAGE),
    FinalMessage(conversation_id="conv_1", response_id="resp_1", message=MESSAGE),
    ErrorEvent(conversation_id="conv_1", error_type="overloaded_error", message="Claude is busy", retryable=True),
]

PARTS: list[ContentPart] = [*MESSAGE.parts, ThinkingPart(text="Looking at regions.")]


def _union_members(union: object) -> set[type]:
    """The classes of an `Annotated[A | B | ..., Field(discriminator=...)]` alias."""
    return set(typing.get_args(typing.get_args(union)[0]))


def test_the_samples_cover_every_member_of_each_union() -> None:
    assert {type(event) for event in EVENTS} == _union_members(Event)
    assert {type(part) for part in PARTS} == _union_members(ContentPart)


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: type(event).__name__)
def test_every_event_round_trips_through_json(event: Event) -> None:
    back = EventAdapter.validate_json(event.model_dump_json())
    assert type(back) is type(event)
    assert back == event


@pytest.mark.parametrize("part", PARTS, ids=lambda part: type(part).__name__)
def test_every_content_part_round_trips_through_json(part: ContentPart) -> None:
    back = ContentPartAdapter.validate_json(part.model_dump_json())
    assert type(back) is type(part)
    assert back == part


def test_an_event_serialises_with_its_type_tag_and_validates_from_a_plain_dict() -> None:
    data = EventAdapter.dump_python(EVENTS[0], mode="json")
    assert data == {"type": "text_delta", "conversation_id": "conv_1", "response_id": "resp_1", "text": "West "}
    assert EventAdapter.validate_python(data) == EVENTS[0]


def test_an_unknown_event_type_is_refused_naming_the_tag() -> None:
    with pytest.raises(ValidationError) as caught:
        EventAdapter.validate_json('{"type": "telepathy", "conversation_id": "conv_1"}')
    (error,) = caught.value.errors()
    assert error["type"] == "union_tag_invalid"
    assert "telepathy" in str(caught.value) and "text_delta" in str(caught.value)


def test_an_event_without_a_type_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        EventAdapter.validate_python({"conversation_id": "conv_1", "text": "hi"})
    assert caught.value.errors()[0]["type"] == "union_tag_not_found"


def test_an_unknown_content_part_type_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        ContentPartAdapter.validate_python({"type": "video", "url": "x"})
    assert caught.value.errors()[0]["type"] == "union_tag_invalid"


def test_a_chart_page_over_200000_characters_is_refused() -> None:
    ChartPagePart(job_id="j", html="x" * 200_000)
    with pytest.raises(ValidationError, match="200000"):
        ChartPagePart(job_id="j", html="x" * 200_001)


def test_events_are_immutable() -> None:
    event = TextDelta(conversation_id="conv_1", text="a")
    with pytest.raises(ValidationError) as caught:
        event.text = "b"
    assert caught.value.errors()[0]["type"] == "frozen_instance"


def test_an_action_button_is_buttonId_on_the_wire_and_accepts_either_spelling() -> None:
    button = BUTTONS[0]
    assert button.model_dump(mode="json") == {"buttonId": "b1", "label": "By month", "prompt": "Show revenue by month"}
    assert (
        ActionButton.model_validate({"buttonId": "b1", "label": "By month", "prompt": "Show revenue by month"})
        == button
    )
    assert (
        ActionButton.model_validate({"button_id": "b1", "label": "By month", "prompt": "Show revenue by month"})
        == button
    )


def test_a_finished_message_refuses_thinking_parts() -> None:
    with pytest.raises(ValidationError, match="thinking"):
        AssistantMessage(conversation_id="conv_1", parts=[ThinkingPart(text="hmm"), TextPart(text="Hi")])


def test_a_finished_message_reads_as_its_text_parts_joined() -> None:
    message = AssistantMessage(
        conversation_id="c", parts=[TextPart(text="West "), ChartPart(chart=CHART), TextPart(text="leads.")]
    )
    assert message.text == "West leads."
    assert message.outcome == "completed" and message.id.startswith("msg_")


def test_a_repr_leaves_out_fields_at_their_default() -> None:
    assert repr(TextDelta(conversation_id="c", text="hi")) == "TextDelta(conversation_id='c', text='hi')"
    assert repr(Usage(output_tokens=3)) == "Usage(output_tokens=3)"


def test_usages_add_field_by_field() -> None:
    total = USAGE + Usage(input_tokens=1, output_tokens=2, cache_read_input_tokens=3, cache_creation_input_tokens=4)
    assert total == Usage(
        input_tokens=101, output_tokens=22, cache_read_input_tokens=903, cache_creation_input_tokens=54
    )
    assert sum([USAGE, USAGE], Usage()) == Usage(
        input_tokens=200, output_tokens=40, cache_read_input_tokens=1800, cache_creation_input_tokens=100
    )


def test_usage_reads_the_sdk_objects_and_their_json_with_missing_counts_as_zero() -> None:
    sdk = AnthropicUsage(input_tokens=10, output_tokens=5, cache_read_input_tokens=None, cache_creation_input_tokens=7)
    assert Usage.from_api(sdk) == Usage(input_tokens=10, output_tokens=5, cache_creation_input_tokens=7)
    delta = MessageDeltaUsage(
        output_tokens=9, input_tokens=None, cache_read_input_tokens=None, cache_creation_input_tokens=None
    )
    assert Usage.from_api(delta) == Usage(output_tokens=9)
    raw: dict[str, Any] = {
        "input_tokens": 3,
        "output_tokens": 1,
        "cache_read_input_tokens": 2,
        "service_tier": "standard",
    }
    assert Usage.from_api(raw) == Usage(input_tokens=3, output_tokens=1, cache_read_input_tokens=2)


def test_negative_token_counts_are_refused() -> None:
    with pytest.raises(ValidationError):
        Usage.from_api({"input_tokens": -1})


def test_the_ledger_numbers_turns_and_adds_them_up_per_conversation() -> None:
    ledger = UsageLedger()
    first = ledger.add("conv_a", AnthropicUsage(input_tokens=100, output_tokens=10, cache_creation_input_tokens=500))
    second = ledger.add("conv_a", {"input_tokens": 20, "output_tokens": 30, "cache_read_input_tokens": 500})
    other = ledger.add("conv_b", Usage(input_tokens=1))

    assert (first.turn, second.turn, other.turn) == (1, 2, 1)
    assert ledger.turns("conv_a") == [first, second]
    assert ledger.total("conv_a") == Usage(
        input_tokens=120, output_tokens=40, cache_read_input_tokens=500, cache_creation_input_tokens=500
    )
    assert ledger.total("conv_b") == Usage(input_tokens=1)
    assert ledger.total("conv_unknown") == Usage() and ledger.turns("conv_unknown") == []
    assert repr(ledger) == "<UsageLedger conversations=2 turns=3>"
