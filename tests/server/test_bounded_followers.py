"""The service's in-memory maps stay bounded: event-stream followers (per end user, and gone with their stream or
client), the runner's runs and the store's waiters (gone once their response ends or their stream closes).

A response is held running by a slow `getData` at the sandbox, so streams stay open on it without timing.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from omni_bridge.server import ApiError
from omni_bridge.server._sse import MAX_STREAMS_PER_USER, Followers
from omni_bridge.stores import Owner, SqliteStore
from omni_bridge.testing import tool_then_answer, tool_use_reply
from tests.conftest import Served
from tests.sandbox.mcp_helpers import wait_until
from tests.server.service_helpers import REVENUE, data_of, faults, read_events, running_service, wait_for_response

ALICE = Owner(tenant="acme", user="alice")


@pytest.fixture(autouse=True)
def slow_get_data(served: Served) -> Iterator[None]:
    faults(served, slow_tool_seconds=30.0, slow_tool_name="getData")
    yield
    faults(served)


def test_a_ticket_is_given_back_even_when_its_stream_never_started() -> None:
    followers = Followers(max_per_user=2)
    first = followers.enter(ALICE)
    second = followers.enter(ALICE)
    assert len(followers) == 2
    with pytest.raises(ApiError, match="already follows 2 event streams"):
        followers.enter(ALICE)
    assert followers.enter(Owner(tenant="acme", user="bob")) is not None  # another user has a count of their own

    first.release()
    first.release()  # giving back twice counts once
    del second  # a stream whose body was never iterated: its ticket goes with it
    gc.collect()
    assert len(followers) == 0 and followers.users == 0


async def test_one_user_follows_so_many_streams_at_most_and_each_leaves_with_its_client(
    served: Served, tmp_path: Path
) -> None:
    first = tool_use_reply(REVENUE, "Let me look that up.")
    async with running_service(served, tmp_path, first, responder=tool_then_answer(REVENUE)) as svc:
        service = svc.service
        store = service.store
        assert isinstance(store, SqliteStore)
        async with svc.client() as alice, svc.client("bob") as bob:
            ids = data_of(await alice.post("/v1/threads", json={"message": {"text": "revenue by region"}}))
            path = f"/v1/responses/{ids['response_id']}/events"
            async with contextlib.AsyncExitStack() as streams:
                for _ in range(MAX_STREAMS_PER_USER):
                    stream = await streams.enter_async_context(alice.stream("GET", path))
                    assert stream.status_code == 200
                refused = await alice.get(path)
                assert refused.status_code == 429 and refused.headers["Retry-After"]
                assert refused.json()["error"]["type"] == "rate_limited"
                assert (await bob.get(path)).status_code == 404  # bob's own count; alice's response is not his
                assert len(service.followers) == MAX_STREAMS_PER_USER
                # On the worker that runs it they follow its live events, held once however many follow.
                live = service.runner.live(ALICE, ids["response_id"])
                assert live is not None
            # The clients went away: their streams end, and nothing of them is left behind.
            await wait_until(lambda: len(service.followers) == 0 and service.followers.users == 0)
            await wait_until(lambda: not store._waiters)

            assert service.runner.running == {ids["response_id"]}
            await alice.post(f"/v1/responses/{ids['response_id']}/cancel")
            await wait_for_response(alice, ids["response_id"])
            events = await read_events(alice, ids["response_id"])  # a stream of an ended response ends at once
            assert events[-1][1] == "end"
            await wait_until(lambda: not service.runner.running and len(service.followers) == 0)
            assert not store._waiters
