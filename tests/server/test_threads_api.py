"""The thread API over real HTTP: the service on loopback, the sandbox for Omni, the scripted fake for Claude."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from omni_bridge.testing import text_reply, tool_then_answer, tool_use_reply
from tests.conftest import Served
from tests.sandbox.mcp_helpers import wait_until
from tests.server.service_helpers import (
    REVENUE,
    data_of,
    faults,
    read_events,
    running_service,
    wait_for_response,
)


@pytest.fixture(autouse=True)
def clean(served: Served) -> Iterator[None]:
    served.sandbox.stats.reset()
    faults(served)
    yield
    faults(served)


async def test_a_thread_is_answered_and_polling_shows_its_progress_then_the_final_message(
    served: Served, tmp_path: Path
) -> None:
    faults(served, slow_tool_seconds=0.5, slow_tool_name="getData")
    first = tool_use_reply(REVENUE, "Let me look that up.", thinking="Revenue lives in the orders topic.")
    async with running_service(
        served, tmp_path, first, responder=tool_then_answer(REVENUE, answer="Done: {results}")
    ) as svc:
        async with svc.client() as alice:
            created = await alice.post("/v1/threads", json={"message": {"text": "What is our revenue by region?"}})
            assert created.status_code == 201
            ids = data_of(created)
            # While the tool runs: running, the progress line, and the parts so far (thinking included).
            running = await wait_for_response(
                alice, ids["response_id"], lambda r: r["status"] == "running" and r["progress"] == "Running getData"
            )
            assert [p["type"] for p in running["parts"]] == ["thinking", "text"]
            assert running["parts"][0]["text"] == "Revenue lives in the orders topic."
            assert running["parts"][1]["text"] == "Let me look that up."
            assert running["message_id"] is None

            done = await wait_for_response(alice, ids["response_id"])
            assert done["status"] == "succeeded" and done["error"] is None and done["message_id"]
            assert "thinking" not in {p["type"] for p in done["parts"]}
            text = "".join(p["text"] for p in done["parts"] if p["type"] == "text")
            assert "Done:" in text and "West" in text and "East" not in text  # alice sees only her region
            message = data_of(await alice.get(f"/v1/messages/{done['message_id']}"))
            assert message["role"] == "assistant" and message["outcome"] == "completed"
            assert message["parts"] == done["parts"]

            posted = await alice.post(f"/v1/threads/{ids['thread_id']}/messages", json={"message": {"text": "Again?"}})
            assert posted.status_code == 201
            second = data_of(posted)
            await wait_for_response(alice, second["response_id"])

            threads = data_of(await alice.get("/v1/threads"))
            assert [t["id"] for t in threads] == [ids["thread_id"]]
            assert threads[0]["title"] == "What is our revenue by region?" and threads[0]["engine"] == "claude"
            messages = data_of(await alice.get(f"/v1/threads/{ids['thread_id']}/messages"))
            assert [(m["role"], m["outcome"]) for m in messages] == [
                ("user", None),
                ("assistant", "completed"),
                ("user", None),
                ("assistant", "completed"),
            ]
            assert messages[0]["id"] == ids["user_message_id"] and messages[2]["id"] == second["user_message_id"]
            assert messages[0]["parts"] == [{"type": "text", "text": "What is our revenue by region?"}]
            current = data_of(await alice.get(f"/v1/threads/{ids['thread_id']}/response"))
            assert current["id"] == second["response_id"] and current["status"] == "succeeded"
            thread = data_of(await alice.get(f"/v1/threads/{ids['thread_id']}"))
            assert thread["current_response_id"] == second["response_id"]


async def test_the_event_stream_delivers_the_same_events_as_the_polled_response(served: Served, tmp_path: Path) -> None:
    faults(served, slow_tool_seconds=0.3, slow_tool_name="getData")
    async with running_service(served, tmp_path, responder=tool_then_answer(REVENUE)) as svc:
        async with svc.client() as alice:
            ids = data_of(await alice.post("/v1/threads", json={"message": {"text": "revenue by region"}}))
            live = await read_events(alice, ids["response_id"])  # opened while it runs: replay, then live
            polled = await wait_for_response(alice, ids["response_id"])
            replay = await read_events(alice, ids["response_id"], last_event_id="0")
            resumed = await read_events(alice, ids["response_id"], last_event_id="2")
            after = await read_events(alice, ids["response_id"], after=2)

    assert live == replay
    *events, end = live
    assert end == (None, "end", {"response_id": ids["response_id"]})
    assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
    kinds = [kind for _, kind, _ in events]
    assert kinds[-1] == "final_message" and kinds.index("tool_call_started") < kinds.index("tool_call_finished")
    assert {"tool_call_finished", "text_delta", "usage_report"} <= set(kinds)
    assert all(data["response_id"] == ids["response_id"] for _, _, data in events)
    final = events[-1][2]["message"]
    assert final["parts"] == polled["parts"] and final["id"] == polled["message_id"]
    assert resumed == after == live[2:]


async def test_a_second_message_while_a_response_runs_is_a_conflict(served: Served, tmp_path: Path) -> None:
    faults(served, slow_tool_seconds=30.0, slow_tool_name="getData")
    async with running_service(served, tmp_path, responder=tool_then_answer(REVENUE)) as svc:
        async with svc.client() as alice:
            ids = data_of(await alice.post("/v1/threads", json={"message": {"text": "revenue by region"}}))
            await wait_until(lambda: served.sandbox.stats.in_flight == 1)

            again = await alice.post(f"/v1/threads/{ids['thread_id']}/messages", json={"message": {"text": "hello?"}})
            assert again.status_code == 409
            error = again.json()["error"]
            assert error["type"] == "response_active" and ids["response_id"] in error["message"]
            messages = data_of(await alice.get(f"/v1/threads/{ids['thread_id']}/messages"))
            assert len(messages) == 1  # the refused message was not written


async def test_a_profile_given_with_a_new_thread_creates_the_end_user_in_omni(served: Served, tmp_path: Path) -> None:
    profile = {"name": "Nadia New", "user_attributes": {"region": "East"}}
    async with running_service(served, tmp_path, responder=tool_then_answer(REVENUE, answer="{results}")) as svc:
        async with svc.client("nadia-new") as nadia:
            body = {"message": {"text": "revenue by region"}, "user_profile": profile}
            ids = data_of(await nadia.post("/v1/threads", json=body))
            done = await wait_for_response(nadia, ids["response_id"])
        async with svc.client("stranger") as stranger:
            refused = await stranger.post("/v1/threads", json={"message": {"text": "revenue by region"}})
            left = data_of(await stranger.get("/v1/threads"))

    assert done["status"] == "succeeded"
    text = "".join(p["text"] for p in done["parts"] if p["type"] == "text")
    assert "East" in text and "West" not in text
    # Omni does not know the stranger and no profile creates them: refused before anything is stored.
    assert refused.status_code == 422 and refused.json()["error"]["type"] == "unknown_user"
    assert left == []


async def test_feedback_is_kept_on_an_assistant_message(served: Served, tmp_path: Path) -> None:
    async with running_service(served, tmp_path, text_reply("Hello from Claude.")) as svc:
        async with svc.client() as alice:
            ids = data_of(await alice.post("/v1/threads", json={"message": {"text": "hi"}}))
            done = await wait_for_response(alice, ids["response_id"])

            rated = await alice.post(
                f"/v1/messages/{done['message_id']}/feedback", json={"rating": "down", "comment": "too short"}
            )
            assert rated.status_code == 200
            assert data_of(rated)["feedback"]["rating"] == "down"
            again = data_of(await alice.post(f"/v1/messages/{done['message_id']}/feedback", json={"rating": "up"}))
            assert again["feedback"]["rating"] == "up" and again["feedback"]["comment"] is None
            stored = data_of(await alice.get(f"/v1/messages/{done['message_id']}"))
            assert stored["feedback"]["rating"] == "up" and stored["parts"] == done["parts"]

            on_question = await alice.post(f"/v1/messages/{ids['user_message_id']}/feedback", json={"rating": "up"})
            assert on_question.status_code == 400 and "assistant" in on_question.json()["error"]["message"]
