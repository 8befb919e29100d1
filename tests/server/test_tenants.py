"""Tenants kept apart at Omni: each service key's end users live in their own namespace of Omni external ids (or
one shared on purpose, or plain ids for a single tenant), and only keys allowed to write profiles may upsert.

The service runs on loopback with the sandbox as Omni and the scripted fake as Claude; what a user may see is
read from the answer (the sandbox's row-level security follows the embed user's `region` attribute) and from
the sandbox's directory of embed users. Every test uses end user ids of its own: the sandbox is shared.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from omni_bridge.config import load_settings
from omni_bridge.exceptions import ConfigError
from omni_bridge.sandbox import embed_user_id
from omni_bridge.server import Service, TenantPolicy
from omni_bridge.stores import Owner
from omni_bridge.testing import tool_then_answer
from tests.cli.console_helpers import clean_env
from tests.conftest import Served
from tests.server.service_helpers import KEY, REVENUE, Running, data_of, faults, running_service, wait_for_response

BETA_KEY = "beta-service-key-0123456789abc"
TWO_TENANTS = f"acme:{KEY},beta:{BETA_KEY}"
ANSWER = tool_then_answer(REVENUE, answer="Revenue by region: {results}")
REGIONS = {"West", "East", "Central", "South"}
ECOMMERCE = "6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean(served: Served) -> Iterator[None]:
    faults(served)
    yield
    faults(served)


def fresh(name: str) -> str:
    """An end user id no other test (the sandbox is shared) has used."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def profile(region: str) -> dict[str, Any]:
    return {"user_attributes": {"region": region}}


async def ask(client: httpx2.AsyncClient, user_profile: dict[str, Any] | None = None) -> set[str]:
    """Start a thread with the revenue question; the regions the finished answer names."""
    body: dict[str, Any] = {"message": {"text": "revenue by region"}}
    if user_profile is not None:
        body["user_profile"] = user_profile
    created = await client.post("/v1/threads", json=body)
    assert created.status_code == 201, created.text
    done = await wait_for_response(client, data_of(created)["response_id"])
    assert done["status"] == "succeeded", done
    text = "".join(part["text"] for part in done["parts"] if part["type"] == "text")
    return {region for region in REGIONS if region in text}


def embed_users(served: Served, external_id: str) -> list[Any]:
    """The sandbox's embed users with exactly this external id."""
    return [u for u in served.sandbox.directory.embed_users() if u.external_id == external_id]


async def stored_threads(svc: Running, tenant: str, user: str) -> list[Any]:
    """What the store itself holds for the owner (not only what the API answers)."""
    return list(await svc.service.store.list_threads(Owner(tenant=tenant, user=user), limit=100, before=None))


# --- the cross-tenant rewrite -------------------------------------------------------------------------------


async def test_two_tenants_sending_the_same_user_are_two_omni_users_and_one_cannot_rewrite_the_other(
    served: Served, tmp_path: Path
) -> None:
    user = fresh("rt-u05")
    async with running_service(served, tmp_path, responder=ANSWER, bridge_service_keys=TWO_TENANTS) as svc:
        async with svc.client(user) as acme, svc.client(user, key=BETA_KEY) as beta:
            first = await ask(acme, profile("East"))
            betas = await ask(beta, profile("all"))  # beta's own "rt-u05", who may see every region
            after = await ask(acme)  # acme's user again, no profile: as Omni now holds them

    assert first == {"East"} and betas == REGIONS
    assert after == {"East"}  # beta's profile did not rewrite acme's user
    [acme_user] = embed_users(served, f"acme/{user}")
    [beta_user] = embed_users(served, f"beta/{user}")
    assert acme_user.id != beta_user.id
    assert acme_user.attributes == {"region": "East"} and beta_user.attributes == {"region": "all"}
    assert embed_users(served, user) == []  # nobody's plain id was created


async def test_a_shared_namespace_acts_as_the_same_omni_user_and_a_lookup_only_key_cannot_write_it(
    served: Served, tmp_path: Path
) -> None:
    user = fresh("cust")
    shared: dict[str, Any] = {
        "bridge_service_keys": TWO_TENANTS,
        "bridge_tenants": "acme:own:upsert,beta:shared=acme:lookup",
    }
    async with running_service(served, tmp_path, responder=ANSWER, **shared) as svc:
        async with svc.client(user) as acme, svc.client(user, key=BETA_KEY) as beta:
            created = await ask(acme, profile("East"))
            seen_by_beta = await ask(beta)  # the same Omni user, looked up
            refused = await beta.post(
                "/v1/threads", json={"message": {"text": "revenue by region"}, "user_profile": profile("all")}
            )
            betas_threads = data_of(await beta.get("/v1/threads"))
            again = await ask(acme)

    assert created == seen_by_beta == again == {"East"}
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["type"] == "profile_write_forbidden" and "beta" in error["message"]
    assert BETA_KEY not in error["message"]
    assert len(betas_threads) == 1  # the refused question stored nothing; the earlier one is beta's own thread
    [omni_user] = embed_users(served, f"acme/{user}")
    assert omni_user.attributes == {"region": "East"}
    assert embed_users(served, f"beta/{user}") == []


async def test_a_lookup_only_key_that_sends_a_profile_is_refused_and_nothing_is_stored(
    served: Served, tmp_path: Path
) -> None:
    user = fresh("new")
    policy: dict[str, Any] = {"bridge_service_keys": TWO_TENANTS, "bridge_tenants": "beta:lookup"}
    async with running_service(served, tmp_path, responder=ANSWER, **policy) as svc:
        async with svc.client(user, key=BETA_KEY) as beta:
            refused = await beta.post(
                "/v1/threads", json={"message": {"text": "hi"}, "user_profile": {"name": "New", **profile("all")}}
            )
            listed = data_of(await beta.get("/v1/threads"))
        stored = await stored_threads(svc, "beta", user)

    assert (refused.status_code, refused.json()["error"]["type"]) == (403, "profile_write_forbidden")
    assert listed == [] and stored == []
    assert embed_users(served, f"beta/{user}") == [] and embed_users(served, user) == []


# --- an end user Omni does not know --------------------------------------------------------------------------


async def test_no_thread_is_stored_for_an_end_user_the_bridge_could_not_resolve(
    served: Served, tmp_path: Path, store_url: str | None
) -> None:
    user = fresh("stranger")
    settings: dict[str, Any] = {
        "bridge_service_keys": TWO_TENANTS,
        "bridge_tenants": "acme:plain",
        "bridge_store_url": store_url,
    }
    async with running_service(served, tmp_path, responder=ANSWER, **settings) as svc:
        async with svc.client(user) as stranger:
            refused = await stranger.post("/v1/threads", json={"message": {"text": "revenue by region"}})
            listed = data_of(await stranger.get("/v1/threads"))
        # acme is plain beside beta's namespace: an id inside beta's namespace names beta's user, not acme's.
        async with svc.client(f"beta/{user}") as squatter:
            squatting = await squatter.post(
                "/v1/threads", json={"message": {"text": "hi"}, "user_profile": profile("all")}
            )
        jobs = httpx2.AsyncClient(
            base_url=svc.url, headers={"Authorization": f"Bearer {KEY}", "X-Bridge-User": user}, timeout=30
        )
        async with jobs:
            job = await jobs.post("/api/v1/ai/jobs", json={"modelId": ECOMMERCE, "prompt": "revenue by region"})
        stored = await stored_threads(svc, "acme", user)
        squatted = await stored_threads(svc, "acme", f"beta/{user}")

    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["type"] == "unknown_user" and "user_profile" in error["message"]
    assert squatting.status_code == 400 and squatting.json()["error"]["type"] == "invalid_user"
    assert job.status_code == 404 and "User not found" in job.json()["detail"]
    assert listed == [] and stored == [] and squatted == []
    assert embed_users(served, f"beta/{user}") == []


async def test_a_profile_omni_would_refuse_is_refused_here_saying_what_to_fix_and_stores_nothing(
    served: Served, tmp_path: Path
) -> None:
    # A fuzz-found case: attribute values Omni's generate-session does not take were passed on, and Omni's 400
    # came back as a 502 `omni_unavailable`, as if Omni were down.
    user = fresh("odd")
    odd_values = {"user_attributes": {"region": [{"nested": 1}], "tier": {"a": True}}}
    long_user = fresh("x" * 243)  # 252 characters: within the header's limit, beyond Omni's with "acme/" before it
    async with running_service(served, tmp_path, responder=ANSWER, bridge_service_keys=TWO_TENANTS) as svc:
        async with svc.client(user) as odd:
            shaped = await odd.post("/v1/threads", json={"message": {"text": "hi"}, "user_profile": odd_values})
        async with svc.client(long_user) as long:
            refused = await long.post("/v1/threads", json={"message": {"text": "hi"}, "user_profile": profile("West")})
        stored = await stored_threads(svc, "acme", user) + await stored_threads(svc, "acme", long_user)

    assert (shaped.status_code, shaped.json()["error"]["type"]) == (400, "invalid_request"), shaped.text
    assert "user_attributes" in shaped.text and embed_users(served, f"acme/{user}") == []
    assert (refused.status_code, refused.json()["error"]["type"]) == (422, "invalid_profile"), refused.text
    assert "user_profile" in refused.json()["error"]["message"]
    assert stored == [] and embed_users(served, f"acme/{long_user}") == []


# --- the Omni-compatible jobs API ---------------------------------------------------------------------------


async def test_in_the_jobs_api_a_tenant_cannot_name_another_tenants_omni_user(served: Served, tmp_path: Path) -> None:
    user = fresh("cust")
    omni_id = embed_user_id(f"acme/{user}")
    async with running_service(served, tmp_path, responder=ANSWER, bridge_service_keys=TWO_TENANTS) as svc:
        async with svc.client(user) as acme_user:
            assert await ask(acme_user, profile("East")) == {"East"}  # acme's user now exists at Omni
        acme = httpx2.AsyncClient(base_url=svc.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        beta = httpx2.AsyncClient(base_url=svc.url, headers={"Authorization": f"Bearer {BETA_KEY}"}, timeout=30)
        async with acme, beta:
            created = await acme.post("/api/v1/ai/jobs", params={"userId": omni_id}, json=job_body())
            assert created.status_code == 201, created.text
            job_id = created.json()["jobId"]
            await until_ended(acme, job_id)
            result = await acme.get(f"/api/v1/ai/jobs/{job_id}/result", params={"userId": omni_id})

            by_id = await beta.post("/api/v1/ai/jobs", params={"userId": omni_id}, json=job_body())
            by_name = await beta.post("/api/v1/ai/jobs", headers={"X-Bridge-User": user}, json=job_body())
            peek = await beta.get(f"/api/v1/ai/jobs/{job_id}", params={"userId": omni_id})
        async with svc.client(user) as acme_user:
            acmes = data_of(await acme_user.get("/v1/threads"))
        betas = await stored_threads(svc, "beta", user)

    assert {region for region in REGIONS if region in result.json()["message"]} == {"East"}
    # The job is acme's end user's, under the id acme's backend uses for them.
    assert created.json()["conversationId"] in {thread["id"] for thread in acmes}
    assert (by_id.status_code, by_id.json()) == (404, {"detail": f"User {omni_id} not found", "status": 404})
    assert by_name.status_code == 404 and "User not found" in by_name.json()["detail"]
    assert (peek.status_code, peek.json()) == (404, {"detail": f"Job {job_id} not found", "status": 404})
    assert betas == []


TERMINAL = {"COMPLETE", "FAILED", "CANCELLED"}


def job_body() -> dict[str, Any]:
    return {"modelId": ECOMMERCE, "prompt": "What is our revenue by region?"}


async def until_ended(client: httpx2.AsyncClient, job_id: str) -> None:
    """Poll the job by id until it ended (bounded)."""
    async with asyncio.timeout(20):
        while True:
            status = await client.get(f"/api/v1/ai/jobs/{job_id}")
            assert status.status_code == 200, status.text
            if status.json()["state"] in TERMINAL:
                return
            await asyncio.sleep(0.02)


# --- a single tenant ----------------------------------------------------------------------------------------


async def test_a_single_tenant_keeps_plain_external_ids(served: Served, tmp_path: Path) -> None:
    user = fresh("solo")
    async with running_service(served, tmp_path, responder=ANSWER, bridge_service_keys=f"acme:{KEY}") as svc:
        assert [m.namespace for m in svc.service.tenants.modes] == [None]
        async with svc.client("alice") as alice, svc.client(user) as solo:
            made_by_embed_login = await ask(alice)  # a demo embed user, resolved as Omni holds it
            created = await ask(solo, profile("South"))

    assert made_by_embed_login == {"West"} and created == {"South"}
    assert [u.attributes for u in embed_users(served, user)] == [{"region": "South"}]
    assert embed_users(served, f"acme/{user}") == []


# --- the setting ----------------------------------------------------------------------------------------------


def test_namespaced_external_ids_never_collide_and_map_back_to_the_tenants_own_ids() -> None:
    tenants = ["a", "a.b", "a-b", "plain"]
    policy = TenantPolicy.parse("plain:plain", tenants)
    users = ["x", "b/x", "a/x", "x/", "/", "a.b/x"]
    seen: dict[str, tuple[str, str]] = {}
    for tenant in tenants:
        for user in users:
            external = policy.external_id(tenant, user)
            if external is None:  # a plain tenant may not name an id inside a namespace
                assert tenant == "plain" and user.split("/", 1)[0] in {"a", "a.b"}
                continue
            assert external not in seen, (tenant, user, seen.get(external))
            seen[external] = (tenant, user)
            assert policy.user_of(tenant, external) == user
            others = [t for t in tenants if t != tenant and policy.user_of(t, external) is not None]
            assert others == [], (tenant, user, others)
    # Two tenants, nothing configured: each its own namespace; one tenant: plain ids.
    assert TenantPolicy.parse(None, ["acme", "beta"]).external_id("acme", "cust-42") == "acme/cust-42"
    assert TenantPolicy.parse("", ["acme"]).external_id("acme", "cust-42") == "cust-42"
    shared = TenantPolicy.parse("beta:shared=acme", ["acme", "beta"])
    assert shared.external_id("beta", "cust-42") == shared.external_id("acme", "cust-42") == "acme/cust-42"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("acme", "is not `tenant:part"),
        (f"acme:{BETA_KEY}", "part 1 of tenant 'acme' is not one of"),  # a key pasted in the wrong place
        (f"{BETA_KEY}:own", "names a tenant without a service key"),
        ("acme:own,acme:lookup", "listed twice"),
        ("acme:own:plain", "two namespace modes"),
        ("acme:lookup:upsert", "two profile rules"),
        ("acme:shared=acme", "shares with itself"),
        (f"acme:shared={KEY}", "shares with a tenant without a service key"),
        ("acme:shared=beta,beta:shared=gamma", "name the tenant that owns the namespace"),
    ],
)
def test_a_bad_tenant_policy_stops_the_service_naming_the_variable_and_never_a_key(
    tmp_path: Path, value: str, expected: str
) -> None:
    keys = f"acme:{KEY},beta:{BETA_KEY},gamma:gamma-service-key-0123456789"
    settings = load_settings(None, bridge_service_keys=keys, bridge_tenants=value, bridge_data_dir=tmp_path)
    with pytest.raises(ConfigError) as refused:
        Service(settings, host="127.0.0.1")
    message = str(refused.value)
    assert message.startswith("BRIDGE_TENANTS: ") and expected in message
    assert KEY not in message and BETA_KEY not in message


def test_a_tenant_whose_name_cannot_be_a_namespace_is_refused(tmp_path: Path) -> None:
    keys = f"acme/east:{KEY},beta:{BETA_KEY}"
    settings = load_settings(None, bridge_service_keys=keys, bridge_data_dir=tmp_path)
    with pytest.raises(ConfigError, match="BRIDGE_TENANTS: tenant 'acme/east' cannot own a namespace"):
        Service(settings, host="127.0.0.1")


# --- doctor -------------------------------------------------------------------------------------------------


def doctor(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = clean_env(tmp_path / "data", **env)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "omni_bridge.cli", "doctor", "--sandbox"]
    return subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120)


def test_doctor_prints_each_tenants_mode_and_never_a_key(tmp_path: Path) -> None:
    keys = f"acme:{KEY},beta:{BETA_KEY},gamma:gamma-service-key-0123456789"
    done = doctor(tmp_path, BRIDGE_SERVICE_KEYS=keys, BRIDGE_TENANTS="beta:shared=acme:lookup,gamma:own")

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "  · acme: own namespace (Omni external ids `acme/<user>`); may upsert profiles" in lines
    assert (
        "  · beta: shares the namespace of 'acme' (Omni external ids `acme/<user>`); lookup only (profiles refused)"
        in lines
    )
    assert "  · gamma: own namespace (Omni external ids `gamma/<user>`); may upsert profiles" in lines
    for key in (KEY, BETA_KEY, "gamma-service-key-0123456789"):
        assert key not in done.stdout and key not in done.stderr


def test_doctor_fails_on_a_tenant_policy_serve_would_refuse_without_showing_a_key(tmp_path: Path) -> None:
    done = doctor(tmp_path, BRIDGE_SERVICE_KEYS=f"acme:{KEY}", BRIDGE_TENANTS="acme:writer")

    assert done.returncode == 1, done.stdout + done.stderr
    assert "✗ BRIDGE_TENANTS: part 1 of tenant 'acme' is not one of" in done.stdout
    assert "Some checks failed." in done.stdout
    assert KEY not in done.stdout and KEY not in done.stderr
