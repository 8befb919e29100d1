"""Conversations: bound to one Omni user for life, and transcripts repaired after a run died half-way."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from omni_bridge.agent.conversation import INTERRUPTED_TOOL_RESULT, Conversation, repair_transcript
from omni_bridge.agent.events import Usage
from omni_bridge.agent.identity import OmniIdentity
from omni_bridge.exceptions import IdentityError

ALICE = OmniIdentity(external_id="cust-42", user_id="u-alice", server="https://acme.omniapp.co")
BOB = OmniIdentity(external_id="cust-43", user_id="u-bob", server="https://acme.omniapp.co")

Message = dict[str, Any]


def user(*content: Any) -> Message:
    return {"role": "user", "content": list(content)}


def assistant(*content: Any) -> Message:
    return {"role": "assistant", "content": list(content)}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(call_id: str, name: str = "getData") -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": {"q": call_id}}


def result(call_id: str, content: str = "rows") -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": content}


def interrupted(call_id: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "is_error": True, "content": INTERRUPTED_TOOL_RESULT}


# Identity binding ----------------------------------------------------------------------------------------------


def test_the_bound_user_may_continue_under_another_display_name() -> None:
    conversation = Conversation(identity=ALICE)
    conversation.check_identity(ALICE.model_copy(update={"display_name": "Alice A."}))
    conversation.check_identity(ALICE.model_copy(update={"server": "https://acme.omniapp.co/"}))
    assert conversation.is_bound_to(ALICE)


def test_another_user_is_refused_without_learning_whose_conversation_it_is() -> None:
    conversation = Conversation(id="conv_1", identity=ALICE)
    with pytest.raises(IdentityError) as caught:
        conversation.check_identity(BOB)
    message = str(caught.value)
    assert "conv_1" in message and "cust-43" in message
    assert "u-alice" not in message and "cust-42" not in message


def test_the_same_user_id_on_another_omni_instance_is_another_user() -> None:
    conversation = Conversation(identity=ALICE)
    with pytest.raises(IdentityError):
        conversation.check_identity(ALICE.model_copy(update={"server": "https://other.omniapp.co"}))


def test_the_identity_and_id_of_a_conversation_cannot_be_reassigned() -> None:
    conversation = Conversation(identity=ALICE)
    with pytest.raises(ValidationError) as caught:
        conversation.identity = BOB
    assert caught.value.errors()[0]["type"] == "frozen_field"
    with pytest.raises(ValidationError):
        conversation.id = "conv_other"
    conversation.title = "Revenue"  # the rest is the record a store saves
    assert conversation.identity == ALICE


def test_a_conversation_round_trips_through_json() -> None:
    conversation = Conversation(
        identity=ALICE,
        engine="omni",
        title="Revenue",
        messages=[user(text("Revenue by region?")), assistant(text("West leads."))],
        omni_conversation_id="oc_1",
        usage=Usage(input_tokens=5),
        metadata={"channel": "web", "tags": ["a"]},
    )
    assert Conversation.model_validate_json(conversation.model_dump_json()) == conversation
    assert conversation.id.startswith("conv_") and conversation.created_at.tzinfo is not None


# Transcript repair ---------------------------------------------------------------------------------------------


def test_a_valid_transcript_comes_back_equal() -> None:
    messages = [
        {"role": "user", "content": "Revenue by region?"},
        assistant(text("Let me look."), tool_use("t1"), tool_use("t2")),
        user(result("t2"), result("t1"), text("and be brief")),
        assistant({"type": "thinking", "thinking": "ok", "signature": "sig"}, text("West leads.")),
        {"role": "user", "content": "Thanks"},
    ]
    original = copy.deepcopy(messages)
    assert repair_transcript(messages) == original
    assert repair_transcript([]) == []


def test_a_tool_call_left_unanswered_at_the_end_gets_an_interrupted_error_result() -> None:
    messages = [user(text("Revenue?")), assistant(text("Querying."), tool_use("t1"), tool_use("t2"))]
    assert repair_transcript(messages) == [*messages, user(interrupted("t1"), interrupted("t2"))]


def test_only_the_missing_results_are_added_after_the_ones_that_arrived() -> None:
    messages = [
        user(text("Revenue?")),
        assistant(tool_use("t1"), tool_use("t2"), tool_use("t3")),
        user(result("t2")),
    ]
    repaired = repair_transcript(messages)
    assert repaired == [messages[0], messages[1], user(result("t2"), interrupted("t1"), interrupted("t3"))]


def test_results_are_moved_before_the_user_text_and_added_when_the_user_spoke_first() -> None:
    messages = [
        user(text("Revenue?")),
        assistant(tool_use("t1")),
        {"role": "user", "content": "Never mind, show costs"},
    ]
    repaired = repair_transcript(messages)
    assert repaired[2] == user(interrupted("t1"), text("Never mind, show costs"))
    messages[2] = user(text("also"), result("t1"))
    assert repair_transcript(messages)[2] == user(result("t1"), text("also"))


def test_stray_and_repeated_tool_results_are_dropped() -> None:
    messages = [
        user(result("ghost"), text("Revenue?")),
        assistant(tool_use("t1")),
        user(result("t1"), result("t1", "again"), result("t9")),
    ]
    assert repair_transcript(messages) == [user(text("Revenue?")), messages[1], user(result("t1"))]


def test_a_message_left_empty_by_dropping_strays_goes_and_its_neighbours_merge() -> None:
    messages = [
        user(text("Revenue?")),
        assistant(text("Checking.")),
        user(result("t0")),
        assistant(text("West leads.")),
    ]
    assert repair_transcript(messages) == [user(text("Revenue?")), assistant(text("Checking."), text("West leads."))]


def test_a_trailing_empty_assistant_message_is_dropped() -> None:
    messages = [user(text("Revenue?")), assistant(tool_use("t1")), user(result("t1")), assistant()]
    assert repair_transcript(messages) == messages[:3]
    streamed_nothing = [user(text("Revenue?")), assistant(text(""))]
    assert repair_transcript(streamed_nothing) == [user(text("Revenue?"))]


def test_consecutive_messages_of_one_role_are_merged() -> None:
    messages = [
        {"role": "user", "content": "Revenue?"},
        user(text("By region.")),
        assistant(tool_use("t1")),
        assistant(text("Still working.")),
    ]
    assert repair_transcript(messages) == [
        user(text("Revenue?"), text("By region.")),
        assistant(tool_use("t1"), text("Still working.")),
        user(interrupted("t1")),
    ]


def test_repair_never_modifies_its_input() -> None:
    messages = [user(text("a")), assistant(tool_use("t1")), user(text("b"), result("t9"))]
    original = copy.deepcopy(messages)
    repaired = repair_transcript(messages)
    assert messages == original
    repaired[0]["content"].append(text("mutated"))
    assert messages == original
