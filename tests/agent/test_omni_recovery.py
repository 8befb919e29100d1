"""The `omni` engine when Omni lost a conversation or denies a job, over real HTTP to the embedded sandbox.

Restarting the embedded sandbox on the same data directory continues the Omni conversation as it was; a
sandbox on a fresh data directory no longer knows it, and the bridge starts a new Omni conversation with the
recent questions and answers carried over, rebinds its conversation, and says so in the answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omni_bridge._serving import serve_asgi
from omni_bridge.agent import Bridge, Conversation, CustomPart, ErrorEvent, FinalMessage, OmniConnection, Progress
from omni_bridge.agent.engines import OmniEngine, Run
from omni_bridge.agent.engines.omni_recovery import Rebound
from omni_bridge.agent.events import Event, TextPart, new_message_id
from omni_bridge.agent.identity import OmniIdentity
from omni_bridge.config import Settings, load_settings
from omni_bridge.sandbox import Sandbox, SandboxConfig, embed_user_id
from omni_bridge.stores import SqliteStore
from omni_bridge.tools import MemoryArtifactStore, OmniRestClient

ECOMMERCE = "6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f"
ALICE = embed_user_id("alice")


def embedded(data_dir: Path) -> Settings:
    """The embedded sandbox (its jobs in `data_dir/sandbox`) and the `omni` engine."""
    return load_settings(None, omni_base_url=None, omni_api_key=None, anthropic_api_key=None, bridge_data_dir=data_dir)


async def ask(bridge: Bridge, question: str, conversation_id: str) -> list[Event]:
    return [e async for e in bridge.ask(user="alice", question=question, conversation_id=conversation_id)]


def final_of(events: list[Event]) -> FinalMessage:
    last = events[-1]
    assert isinstance(last, FinalMessage), events
    return last


async def omni_conversation(bridge: Bridge, conversation_id: str) -> Conversation:
    conversation = await bridge.store.get(conversation_id)
    assert conversation is not None and conversation.omni_conversation_id is not None
    return conversation


async def test_a_conversation_continues_after_the_embedded_sandbox_restarts_on_its_data_dir(tmp_path: Path) -> None:
    settings = embedded(tmp_path)
    async with Bridge(settings, store=SqliteStore(tmp_path / "bridge.db")) as bridge:
        first = final_of(await ask(bridge, "revenue by region", "conv_restart"))
        omni_id = (await omni_conversation(bridge, "conv_restart")).omni_conversation_id
        assert omni_id is not None
    assert first.message.outcome == "completed"
    assert (tmp_path / "sandbox" / "sandbox.db").exists()

    async with Bridge(settings, store=SqliteStore(tmp_path / "bridge.db")) as bridge:  # a new sandbox, same dir
        events = await ask(bridge, "revenue by month", "conv_restart")
        after = await omni_conversation(bridge, "conv_restart")
        assert after.omni_conversation_id == omni_id
        history = await bridge.rest.get_conversation(omni_id, user_id=ALICE)

    again = final_of(events)
    assert again.message.outcome == "completed" and "Month" in again.message.text
    assert not any(isinstance(p, CustomPart) for p in again.message.parts)  # nothing to recover
    assert [m.content for m in history.messages if m.role == "user"] == ["revenue by region", "revenue by month"]
    assert all(m.job_id and m.omni_chat_url for m in history.messages if m.role == "assistant")


async def test_when_omni_no_longer_knows_the_conversation_the_bridge_starts_one_and_says_so(tmp_path: Path) -> None:
    settings = embedded(tmp_path)
    store = tmp_path / "bridge.db"
    async with Bridge(settings, store=SqliteStore(store)) as bridge:
        final_of(await ask(bridge, "revenue by region", "conv_lost"))
        lost = (await omni_conversation(bridge, "conv_lost")).omni_conversation_id

    # The same bridge conversation, against a sandbox on a fresh data directory: Omni has never heard of it.
    fresh = OmniConnection.from_settings(settings, sandbox_data_dir=tmp_path / "fresh")
    async with Bridge(settings, store=SqliteStore(store), connection=fresh) as bridge:
        events = await ask(bridge, "revenue by month", "conv_lost")
        rebound = await omni_conversation(bridge, "conv_lost")
        assert rebound.omni_conversation_id not in (None, lost)
        assert rebound.omni_conversation_id is not None
        history = await bridge.rest.get_conversation(rebound.omni_conversation_id, user_id=ALICE)
        # ... and the question after continues the new Omni conversation, with nothing more to say about it.
        later = final_of(await ask(bridge, "orders by month", "conv_lost"))
        assert (await omni_conversation(bridge, "conv_lost")).omni_conversation_id == rebound.omni_conversation_id

    message = final_of(events).message
    assert message.outcome == "completed"
    notice = "Omni no longer had this conversation, so a new one was started; the last 1 question(s) and answer(s)"
    assert isinstance(message.parts[0], TextPart) and notice in message.parts[0].text
    [custom] = [p for p in message.parts if isinstance(p, CustomPart)]
    assert custom.name == "omni_conversation_restarted"
    assert custom.data == {
        "message": notice + " were carried over.",
        "lostOmniConversationId": lost,
        "omniConversationId": rebound.omni_conversation_id,
        "carriedTurns": 1,
    }
    assert any(isinstance(e, Progress) and e.message.startswith("Omni no longer had") for e in events)
    assert "Month" in message.text  # the question asked, not the one carried
    prompt = history.messages[0].content
    assert prompt.startswith("Earlier in this conversation") and "Q: revenue by region\nA: **" in prompt
    assert prompt.endswith("\n\nrevenue by month")
    assert not any(isinstance(p, CustomPart) for p in later.message.parts)
    # The carried notice is not part of the transcript the next rebinding would carry.
    assert all("Omni no longer had" not in str(m["content"]) for m in rebound.messages)


def test_carried_context_keeps_the_newest_pairs_within_the_budget_and_the_question_last() -> None:
    messages: list[dict[str, Any]] = []
    for n in range(5):
        messages.append({"role": "user", "content": [{"type": "text", "text": f"question {n}"}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": f"answer {n}\n\n| a |\n" * 40}]})
    messages.append({"role": "user", "content": [{"type": "text", "text": "unanswered"}]})

    rebound = Rebound.of(messages, "the question", lost_conversation_id="c", turns=3, budget=500)

    assert rebound.carried == 2 and "question 4" in rebound.prompt and "question 3" in rebound.prompt
    assert "question 2" not in rebound.prompt and "unanswered" not in rebound.prompt
    assert len(rebound.prompt) <= 500 + len("\n\nthe question")
    assert rebound.prompt.split("\n\n")[-1] == "the question"  # the only blank line is before the question
    assert Rebound.of([], "q", lost_conversation_id="c").prompt == "q"


# --- denied jobs ---------------------------------------------------------------------------------------------


def _run(url: str) -> Run:
    identity = OmniIdentity(external_id="alice", user_id=ALICE, server=url)
    return Run(
        conversation=Conversation(identity=identity, engine="omni"),
        question="total revenue",
        response_id=new_message_id(),
    )


async def _events(rest: OmniRestClient, run: Run) -> list[Event]:
    engine = OmniEngine(rest, artifacts=MemoryArtifactStore(), model_id=ECOMMERCE, poll_initial=0.005, poll_max=0.02)
    return [e async for e in engine.run(run)]


async def test_a_job_omni_denies_ends_with_the_typed_error_and_omnis_reason() -> None:
    sandbox = Sandbox(SandboxConfig(job_step_seconds=0.01, ai_credit_limit=0))
    async with sandbox.serve() as url, OmniRestClient(url, sandbox.config.org_key) as rest:
        events = await _events(rest, _run(url))

    [error] = [e for e in events if isinstance(e, ErrorEvent)]
    assert error.error_type == "job_denied" and not error.retryable
    assert error.message == "Omni denied the question: The organization is over its AI credit limit (0 AI jobs)"
    final = final_of(events)
    assert final.message.outcome == "errored" and final.message.text == error.message


@pytest.fixture
async def refusing_omni() -> AsyncIterator[str]:
    """An Omni that refuses the create itself over credits (the other way Omni might deny), as a real server."""

    async def create(request: Request) -> Response:
        return JSONResponse({"detail": "Forbidden: the organization is over its AI credit limit", "status": 403}, 403)

    async with serve_asgi(Starlette(routes=[Route("/api/v1/ai/jobs", create, methods=["POST"])])) as url:
        yield url


async def test_a_create_refused_over_credits_is_a_denial_too(refusing_omni: str) -> None:
    async with OmniRestClient(refusing_omni, "key") as rest:
        events = await _events(rest, _run(refusing_omni))

    [error] = [e for e in events if isinstance(e, ErrorEvent)]
    assert error.error_type == "job_denied"
    assert error.message == "Omni denied the question: Forbidden: the organization is over its AI credit limit"
