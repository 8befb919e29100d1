"""Run the HTTP service on loopback for a test: the sandbox for Omni, the scripted fake for Claude.

`running_service(...)` serves `create_app` with `serve_asgi` on the test's own loop (so the service's
lifespan runs there too) and yields a `Running` with the URL and clients that carry a service key and an
`X-Bridge-User`. Waiting helpers poll a condition over HTTP within a bounded `asyncio.timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from omni_bridge._serving import serve_asgi
from omni_bridge.config import Settings, load_settings
from omni_bridge.sandbox import Faults
from omni_bridge.server import Service, create_app
from omni_bridge.stores import Store
from omni_bridge.testing import ErrorReply, FakeAnthropic, Reply, Responder, ToolCall
from tests.conftest import Served

KEY = "acme-service-key-0123456789"
OTHER_TENANT_KEY = "globex-service-key-0123456789"
REVENUE = ToolCall("getData", {"prompt": "revenue by region"})
ACTIVE = ("queued", "running")


@dataclass
class Running:
    url: str
    service: Service
    fake: FakeAnthropic

    def client(self, user: str | None = "alice", *, key: str | None = KEY) -> httpx2.AsyncClient:
        headers = {}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if user is not None:
            headers["X-Bridge-User"] = user
        return httpx2.AsyncClient(base_url=self.url, headers=headers, timeout=30)


def faults(served: Served, **knobs: Any) -> None:
    """Set the sandbox's fault knobs: `knobs`, and every other knob back to its default.

    All at once, so a knob another test left out of range (the sandbox keeps a value it refused) is reset too.
    """
    served.sandbox.set_faults(**(Faults().as_dict() | knobs))


def service_settings(served: Served, data_dir: Path, fake_url: str | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "omni_base_url": served.url,
        "omni_api_key": served.org_key,
        "bridge_data_dir": data_dir,
        "bridge_service_keys": f"acme:{KEY},globex:{OTHER_TENANT_KEY}",
        # acme acts for the sandbox's own embed users (alice, bob, ...) as they are; globex has its own namespace.
        "bridge_tenants": "acme:plain",
        "bridge_engine": "claude" if fake_url else "omni",
    }
    if "bridge_service_keys" in overrides:
        del values["bridge_tenants"]  # other keys, other tenants: the test names their policy if it needs one
    if fake_url is not None:
        values |= {"anthropic_api_key": "test-key", "anthropic_base_url": fake_url}
    return load_settings(None, **(values | overrides))


@contextlib.asynccontextmanager
async def running_service(
    served: Served,
    data_dir: Path,
    *script: Reply | ErrorReply,
    responder: Responder | None = None,
    worker_id: str = "worker-a",
    store: Store | None = None,
    **overrides: Any,
) -> AsyncIterator[Running]:
    """The service on loopback, answering with Claude as scripted (`script`, then `responder`)."""
    fake = FakeAnthropic(*script, responder=responder)
    async with fake.serve() as fake_url:
        settings = service_settings(served, data_dir, fake_url, **overrides)
        service = Service(settings, worker_id=worker_id, store=store)
        async with serve_asgi(create_app(settings, service=service)) as url:
            yield Running(url, service, fake)


def data_of(answer: httpx2.Response) -> Any:
    body = answer.json()
    assert body["error"] is None, body
    return body["data"]


async def wait_for_response(
    client: httpx2.AsyncClient,
    response_id: str,
    until: Callable[[dict[str, Any]], bool] = lambda r: r["status"] not in ACTIVE,
    *,
    seconds: float = 15.0,
) -> dict[str, Any]:
    """Poll `GET /v1/responses/{id}` until `until(response)` holds."""
    async with asyncio.timeout(seconds):
        while True:
            response: dict[str, Any] = data_of(await client.get(f"/v1/responses/{response_id}"))
            if until(response):
                return response
            await asyncio.sleep(0.02)


async def read_events(
    client: httpx2.AsyncClient, response_id: str, *, after: int | None = None, last_event_id: str | None = None
) -> list[tuple[int | None, str, Any]]:
    """The whole event stream of a response: `(id, event, data)` frames up to and including `end`."""
    frames: list[tuple[int | None, str, Any]] = []
    path = f"/v1/responses/{response_id}/events" + ("" if after is None else f"?after={after}")
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    async with asyncio.timeout(20), client.stream("GET", path, headers=headers) as s:
        assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
        frame: dict[str, str] = {}
        async for line in s.aiter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(": ")
                frame[name] = value
                continue
            if frame:
                seq = int(frame["id"]) if "id" in frame else None
                frames.append((seq, frame["event"], json.loads(frame["data"])))
                if frame["event"] == "end":
                    break
                frame = {}
    return frames
