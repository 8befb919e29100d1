"""`AnswerView`: one answer's events drawn on a pipe (plain lines) and on a terminal (a live region, a spinner)."""

from __future__ import annotations

import io
import re

from omni_bridge.agent import (
    ActionButton,
    AssistantMessage,
    ChartPart,
    ChartReady,
    ErrorEvent,
    FinalMessage,
    Progress,
    StructuredActionPart,
    SuggestedActionsPart,
    TextDelta,
    TextPart,
    ToolCallFinished,
    ToolCallStarted,
)
from omni_bridge.cli.console.render import make_console
from omni_bridge.cli.console.view import AnswerView, ResultTable
from omni_bridge.tools import ChartPoint, ChartSeries, DataChart

CID = "conv_1"
CHART = DataChart(
    title="revenue by region",
    x_label="region",
    series=[ChartSeries(name="revenue", points=[ChartPoint(x="West", y=1234567.0)])],
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pipe_view(out: io.StringIO, *, show_answer: bool = True) -> AnswerView:
    return AnswerView(make_console(out, terminal=False, width=50), live=False, show_answer=show_answer)


def plain(screen: str) -> str:
    """The text of what a terminal was sent: escape sequences and carriage returns removed."""
    return re.sub(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-B]", "", screen).replace("\r", "")


def final(*parts: object, outcome: str = "completed") -> FinalMessage:
    message = AssistantMessage.model_validate({"conversation_id": CID, "parts": list(parts), "outcome": outcome})
    return FinalMessage(conversation_id=CID, message=message)


def started() -> ToolCallStarted:
    return ToolCallStarted(conversation_id=CID, call_id="t1", tool="getData", arguments={"prompt": "revenue by region"})


def finished(**changes: object) -> ToolCallFinished:
    fields = {"call_id": "t1", "tool": "getData", "is_error": False, "summary": "4 rows", "elapsed_ms": 1500.0}
    return ToolCallFinished.model_validate({"conversation_id": CID, **fields, **changes})


def test_through_a_pipe_the_tool_calls_and_progress_are_plain_lines_in_order() -> None:
    out = io.StringIO()
    view = pipe_view(out)
    for event in (
        TextDelta(conversation_id=CID, text="Let me look."),
        started(),
        Progress(conversation_id=CID, message="Omni's AI is working"),
        finished(result_id="res_1", row_count=4),
        TextDelta(conversation_id=CID, text="West leads."),
        final(TextPart(text="West leads.")),
    ):
        view.handle(event)
    view.render_result()

    assert out.getvalue() == (
        "Let me look.\n· getData(revenue by region)\n· Omni's AI is working\n✓ getData: 4 rows (1.5s)\nWest leads.\n"
    )
    assert "\x1b" not in out.getvalue()
    assert [call.as_json()["row_count"] for call in view.tool_calls] == [4]
    assert view.result_id() == "res_1"


def test_on_a_terminal_a_spinner_shows_the_running_tool_and_the_time_and_a_line_stays_when_it_is_done() -> None:
    out, clock = io.StringIO(), Clock()
    view = AnswerView(make_console(out, terminal=True, width=80), live=True, clock=clock)
    view.handle(TextDelta(conversation_id=CID, text="Let me **look**."))
    view.handle(started())
    clock.now += 2.5
    view.tick()

    assert "\x1b[" in out.getvalue()  # styled
    last_frame = plain(out.getvalue()).rsplit("Let me look.", 1)[1]
    assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] getData\(revenue by region\)  2\.5s", last_frame), last_frame
    view.handle(finished(row_count=4))
    view.handle(TextDelta(conversation_id=CID, text="West leads."))
    view.handle(final(TextPart(text="Let me look. West leads.")))
    view.render_result()

    screen = plain(out.getvalue())
    assert "✓ getData(revenue by region) · 4 rows · 1.5s\n" in screen
    assert screen.index("Let me look.") < screen.index("✓ getData") < screen.rindex("West leads.")
    assert "**" not in screen  # Markdown, rendered
    tail = screen.rsplit("✓ getData", 1)[1]
    assert not re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]", tail.rsplit("West leads.", 1)[1])  # the spinner is gone at the end


def test_the_end_of_an_answer_draws_the_chart_the_follow_ups_and_the_omni_link() -> None:
    out = io.StringIO()
    view = pipe_view(out)
    view.handle(ChartReady(conversation_id=CID, chart=CHART, result_id="res_1"))
    buttons = [ActionButton(button_id="f1", label="By month", prompt="revenue by month")]
    view.handle(
        final(
            TextPart(text="West leads."),
            ChartPart(chart=CHART, result_id="res_1"),
            SuggestedActionsPart(actions=buttons),
            StructuredActionPart(action="open_in_omni", url="http://omni/chat/1"),
        )
    )
    view.render_result(ResultTable(columns=["ignored"], rows=[["when there is a chart"]], total=1))

    lines = out.getvalue().splitlines()
    assert "West leads." in lines  # no text deltas came: the final message's text is shown
    assert "revenue by region  (bar chart)" in lines
    assert any(line.startswith("West  █") and line.endswith("1,234,567") for line in lines)
    assert "ignored" not in out.getvalue()
    assert lines[-4:] == [
        "Follow-ups (type the number to ask):",
        "  1. By month",
        "",
        "Open in Omni: http://omni/chat/1",
    ]
    assert view.follow_ups() == buttons


def test_a_result_without_a_chart_is_drawn_as_a_table() -> None:
    out = io.StringIO()
    view = pipe_view(out)
    view.handle(final(TextPart(text="Two columns of labels.")))
    view.render_result(ResultTable(columns=["region", "state", "orders"], rows=[["West", "CA", "12000"]], total=40))

    assert "| West   | CA    | 12,000 |" in out.getvalue()
    assert "… 39 more rows" in out.getvalue()


def test_an_error_is_shown_once_and_the_message_text_is_not_repeated() -> None:
    out = io.StringIO()
    view = pipe_view(out)
    view.handle(
        ErrorEvent(conversation_id=CID, error_type="timeout", message="Omni's AI did not answer.", retryable=True)
    )
    view.handle(final(TextPart(text="Omni's AI did not answer."), outcome="errored"))
    view.render_result()

    assert out.getvalue() == "✗ Omni's AI did not answer.\n"


def test_with_show_answer_off_only_progress_is_written() -> None:
    out = io.StringIO()
    view = pipe_view(out, show_answer=False)
    view.handle(started())
    view.handle(TextDelta(conversation_id=CID, text="secret of stdout"))
    view.handle(final(TextPart(text="secret of stdout")))
    view.render_result()

    assert out.getvalue() == ""
    assert view.final is not None and view.final.text == "secret of stdout"
