"""The sandbox's embed MCP token grant (`/oauth/token`) and the tokens it issues, over loopback HTTP.

The claims are the sandbox's documented guess (`docs/embed-mcp-tokens.md`); what is tested is what Omni states: a
token minted for an embed user acts as that user on MCP with no `X-MCP-User-ID`, the user is upserted from the
identity it names, and an expired, revoked or forged token is refused with 401 so a client knows to mint again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2
import jwt
import pytest

from omni_bridge.sandbox import EMBED_MCP_PATH, MCP_PATH, Sandbox, SandboxConfig, embed_user_id
from omni_bridge.tools import mcp_headers
from tests.conftest import Served
from tests.sandbox.mcp_helpers import csv_rows, mcp_client, refusal, text_of

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PATHS = [MCP_PATH, EMBED_MCP_PATH]


@pytest.fixture(scope="module")
def box() -> Iterator[Served]:
    """A sandbox of this module's own: these tests revoke and expire every token."""
    sandbox = Sandbox(SandboxConfig(job_step_seconds=0.0))
    with sandbox.run_in_thread() as url:
        yield Served(sandbox, url)


def assertion(served: Served, secret: str | None = None, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": "tests", "aud": served.url + "/oauth/token", "iat": now, "exp": now + 60, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret or served.sandbox.config.embed_secret)


def grant(served: Served, jwt_text: str, *, grant_type: str = JWT_BEARER) -> httpx2.Response:
    return httpx2.post(served.url + "/oauth/token", data={"grant_type": grant_type, "assertion": jwt_text})


def token_for(served: Served, external_id: str, **claims: Any) -> str:
    answer = grant(served, assertion(served, sub=external_id, **claims))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 86_400 and "refresh_token" not in body
    assert answer.headers["cache-control"] == "no-store"
    token: str = body["access_token"]
    return token


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def regions(result: Any) -> set[str]:
    assert not result.is_error, text_of(result)
    data = result.structured_content
    column = next(i for i, f in enumerate(data["fields"]) if "region" in f)
    return {row[column] for row in csv_rows(data)}


@pytest.mark.parametrize("path", PATHS)
async def test_a_token_acts_as_its_user_with_no_user_header_on_both_mcp_paths(box: Served, path: str) -> None:
    alice, bob = token_for(box, "alice"), token_for(box, "bob")
    for token, expected in ((alice, {"West"}), (bob, {"East"})):
        # X-MCP-User-Required is satisfied by the token itself: the token is the user.
        async with mcp_client(box.url + path, bearer(token, **{"X-MCP-User-Required": "true"})) as client:
            assert regions(await client.call_tool("getData", {"prompt": "revenue by region"})) == expected
    # Claims left out (name, attributes) left the users as they were.
    assert box.sandbox.directory.get(embed_user_id("bob")).name == "Bob Brown"


async def test_a_token_naming_another_user_is_forbidden_and_naming_its_own_is_fine(box: Served) -> None:
    token = token_for(box, "alice")
    error = await refusal(box.mcp_url, bearer(token, **{"X-MCP-User-ID": embed_user_id("bob")}))
    assert error.data["status"] == 403 and "cannot act on behalf" in error.message
    async with mcp_client(box.mcp_url, bearer(token, **{"X-MCP-User-ID": embed_user_id("alice")})) as client:
        assert regions(await client.call_tool("getData", {"prompt": "revenue by region"})) == {"West"}


async def test_the_grant_upserts_the_user_it_names_with_attributes_groups_and_roles(box: Served) -> None:
    external_id = f"token-user-{uuid.uuid4().hex[:8]}"
    model = str(uuid.uuid4())
    token = token_for(
        box,
        external_id,
        name="Tina Token",
        userAttributes={"region": "South"},
        groups=["Ops"],
        modelRoles={model: "VIEWER"},
        connectionRoles={"conn": "QUERIER"},
    )
    user = box.sandbox.directory.get(embed_user_id(external_id))
    assert (user.name, dict(user.attributes), user.groups, user.role) == (
        "Tina Token",
        {"region": "South"},
        ("Ops",),
        "VIEWER",
    )
    async with mcp_client(box.mcp_url, bearer(token)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        refused = await client.call_tool("getData", {"prompt": "revenue by region"})
    assert "getData" not in names and {"askOmni", "checkStatus"} <= names  # the least role given wins: Viewer
    assert refused.is_error and text_of(refused).startswith("403 Forbidden") and "VIEWER" in text_of(refused)


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"secret": "a-forged-secret-that-is-long-enough-for-hs256"}, "invalid_grant", "signature"),
        ({"exp": int(time.time()) - 120}, "invalid_grant", "expired"),
        ({"aud": "https://elsewhere.example/oauth/token"}, "invalid_grant", "aud"),
        ({"iss": None}, "invalid_grant", "'iss'"),
        ({"sub": None}, "invalid_grant", "'sub'"),
        ({"sub": "nobody-yet"}, "invalid_grant", "name"),
        ({"modelRoles": {"m": "EMPEROR"}}, "invalid_grant", "Unknown role"),
    ],
    ids=["forged", "expired", "audience", "no-iss", "no-sub", "new-user-without-name", "unknown-role"],
)
def test_a_bad_assertion_is_refused_as_rfc_6749_says(
    box: Served, change: dict[str, Any], error: str, words: str
) -> None:
    secret = change.pop("secret", None)
    claims = {"sub": "alice", **change}
    answer = grant(box, assertion(box, secret, **claims))
    assert answer.status_code == 400 and answer.json()["error"] == error
    assert words in answer.json()["error_description"]
    assert box.sandbox.config.embed_secret not in answer.text


def test_a_request_that_is_not_the_jwt_bearer_grant_is_refused(box: Served) -> None:
    assert grant(box, assertion(box, sub="alice"), grant_type="client_credentials").json()["error"] == (
        "unsupported_grant_type"
    )
    no_assertion = httpx2.post(box.url + "/oauth/token", data={"grant_type": JWT_BEARER})
    assert no_assertion.status_code == 400 and no_assertion.json()["error"] == "invalid_request"
    as_json = httpx2.post(box.url + "/oauth/token", json={"grant_type": JWT_BEARER, "assertion": "x"})
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"


@pytest.mark.parametrize("how", ["forged", "revoked", "expired"])
async def test_an_expired_revoked_or_forged_token_gets_401_with_a_challenge(box: Served, how: str) -> None:
    token = token_for(box, "carol")
    if how == "forged":
        token = token[:-4] + "AAAA"
    elif how == "revoked":
        assert box.sandbox.revoke_embed_tokens() >= 1
    else:
        assert box.sandbox.expire_embed_tokens() >= 1
    answer = httpx2.post(box.mcp_url, headers=bearer(token), json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert answer.status_code == 401
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith("Bearer") and 'error="invalid_token"' in challenge
    assert {"forged": "invalid", "revoked": "revoked", "expired": "expired"}[how] in answer.json()["error"]["message"]


def test_the_embed_secret_and_tokens_stay_out_of_reprs(box: Served) -> None:
    token = token_for(box, "alice")
    shown = repr(box.sandbox.config) + repr(box.sandbox) + repr(box.sandbox.directory.tokens)
    assert box.sandbox.config.embed_secret not in shown and token not in shown
    with pytest.raises(ValueError, match="32 bytes"):
        SandboxConfig(embed_secret="short")


@pytest.mark.parametrize("path", PATHS)
async def test_a_viewer_lists_no_get_data_and_calling_it_anyway_is_a_403_result(box: Served, path: str) -> None:
    headers = mcp_headers(box.org_key, user_id=embed_user_id("vera"))
    async with mcp_client(box.url + path, headers) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("getData", {"prompt": "revenue by region"})
        asked = await client.call_tool("askOmni", {"prompt": "revenue by region"})
    assert names == {"pickModel", "pickTopic", "askOmni", "checkStatus", "searchOmniDocs", "getJobChartPage"}
    assert result.is_error and text_of(result) == "403 Forbidden: Your role (VIEWER) does not allow getData"
    assert not asked.is_error  # Omni's agent answers a Viewer


def test_generate_session_sets_the_least_role_given_and_refuses_an_unknown_one(box: Served) -> None:
    external_id = f"roles-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {box.org_key}"}
    url = box.url + "/api/v1/embed/sso/generate-session"
    body = {"externalId": external_id, "name": "R", "connectionRoles": {"c": "QUERIER"}, "modelRoles": {"m": "VIEWER"}}
    assert httpx2.post(url, headers=headers, json=body).status_code == 200
    assert box.sandbox.directory.get(embed_user_id(external_id)).role == "VIEWER"
    # Sent again without roles, the role stays; with a known one, it changes.
    assert httpx2.post(url, headers=headers, json={"externalId": external_id, "name": "R"}).status_code == 200
    assert box.sandbox.directory.get(embed_user_id(external_id)).role == "VIEWER"
    body["modelRoles"] = {"m": "EDITOR"}
    assert httpx2.post(url, headers=headers, json=body).status_code == 200
    assert box.sandbox.directory.get(embed_user_id(external_id)).role == "QUERIER"
    bad = httpx2.post(url, headers=headers, json={**body, "modelRoles": {"m": "EMPEROR"}})
    assert bad.status_code == 400 and "Unknown role 'EMPEROR'" in bad.json()["detail"]
