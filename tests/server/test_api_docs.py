"""The interactive API docs (`/docs`, `/redoc`) and the examples of the OpenAPI description, over HTTP.

The pages and every file they load come from the service itself (parsed out of the HTML and fetched back), under
a Content-Security-Policy that allows scripts from the service only; Chromium renders them with no script refused
and no request leaving the service. Every operation of `/openapi.json` carries an example for its body and its
required parameters, each body example is valid for its model, and the first `POST /v1/threads` example starts a
thread as it stands.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx2
import pytest
from pydantic import BaseModel

from omni_bridge._serving import serve_asgi_in_thread
from omni_bridge.sandbox import Sandbox
from omni_bridge.server import create_app
from omni_bridge.server._jobs_models import CreateJobBody
from omni_bridge.server._threads_models import CreateThread, FeedbackIn, PostMessage
from omni_bridge.testing import text_reply
from tests.conftest import Served
from tests.server.service_helpers import KEY, data_of, running_service, service_settings
from tests.server.test_web_page import chromium_page, requires_chromium

PAGES = ("/docs", "/redoc")
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@pytest.fixture(scope="module")
def docs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service on loopback (its own sandbox; nothing is asked of it but its pages and description)."""
    sandbox = Sandbox()
    with sandbox.run_in_thread() as sandbox_url:
        settings = service_settings(Served(sandbox, sandbox_url), tmp_path_factory.mktemp("docs"), None)
        with serve_asgi_in_thread(create_app(settings)) as url:
            yield url


class _Loads(HTMLParser):
    """What a page loads: `src` of scripts and images, `href` of links; and the text of inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        url = values.get("href") if tag == "link" else values.get("src")
        if url is not None:
            self.urls.append(url)
        self._in_script = tag == "script" and url is None

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def _directives(policy: str) -> dict[str, list[str]]:
    parts = (part.split() for part in policy.split(";") if part.strip())
    return {words[0]: words[1:] for words in parts}


@pytest.mark.parametrize("path", PAGES)
def test_the_docs_page_and_every_file_it_loads_come_from_the_service(docs_url: str, path: str) -> None:
    page = httpx2.get(docs_url + path)  # no service key: the docs are public, trying a request is not
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    loads = _Loads()
    loads.feed(page.text)
    assert loads.inline_scripts == 0  # the policy would refuse them
    assert any(url.endswith(".js") for url in loads.urls)
    for url in loads.urls:
        absolute = urljoin(docs_url + path, url)
        assert urlsplit(absolute).netloc == urlsplit(docs_url).netloc, f"{url} is not the service's own"
        asset = httpx2.get(absolute)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].split(";")[0] == MEDIA_TYPES[Path(urlsplit(url).path).suffix], url
        assert asset.content


@pytest.mark.parametrize("path", PAGES)
def test_the_docs_page_allows_scripts_from_the_service_only(docs_url: str, path: str) -> None:
    policy = _directives(httpx2.get(docs_url + path).headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]  # no inline script, no eval, no other host
    assert policy["connect-src"] == ["'self'"]  # "Try it out" reaches this service only
    assert policy["frame-ancestors"] == ["'none'"]
    assert not [value for values in policy.values() for value in values if value.startswith(("http", "*"))]


def test_an_unknown_docs_file_is_a_404(docs_url: str) -> None:
    answer = httpx2.get(docs_url + "/docs/assets/../openapi.json.js")
    assert answer.status_code == 404
    answer = httpx2.get(docs_url + "/docs/assets/swagger-ui.js")
    assert answer.status_code == 404
    assert answer.json()["error"]["type"] == "not_found"


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_has_an_example_of_its_body_and_required_parameters(docs_url: str) -> None:
    document = httpx2.get(docs_url + "/openapi.json").json()
    missing = []
    bodies = 0
    for label, operation in _operations(document):
        for param in operation.get("parameters", []):
            if param["required"] and "example" not in param and "examples" not in param:
                missing.append(f"{label}: parameter {param['name']}")
        if "requestBody" in operation:
            bodies += 1
            for media_type, content in operation["requestBody"]["content"].items():
                if not content.get("examples") and "example" not in content:
                    missing.append(f"{label}: {media_type} body")
    assert bodies >= 4  # createThread, postMessage, giveFeedback, aiJobSubmit
    assert not missing, "operations without an example:\n" + "\n".join(missing)


def test_the_body_examples_are_valid_requests(docs_url: str) -> None:
    """Each body example validates against the schema it illustrates, as the service reads it."""
    models: dict[str, type[BaseModel]] = {
        model.__name__: model for model in (CreateThread, PostMessage, FeedbackIn, CreateJobBody)
    }
    document = httpx2.get(docs_url + "/openapi.json").json()
    checked = 0
    for label, operation in _operations(document):
        if "requestBody" not in operation:
            continue
        content = operation["requestBody"]["content"]["application/json"]
        model = models[content["schema"]["$ref"].rsplit("/", 1)[-1]]
        for name, example in content["examples"].items():
            try:
                model.model_validate_json(json.dumps(example["value"]))
            except ValueError as exc:
                pytest.fail(f"{label} example {name} is not valid: {exc}")
            checked += 1
    assert checked >= 6


async def test_the_first_create_thread_example_starts_a_thread(served: Served, tmp_path: Path) -> None:
    async with running_service(served, tmp_path, text_reply("Revenue by region: West leads.")) as running:
        async with running.client() as client:
            document = (await client.get("/openapi.json")).json()
            operation = document["paths"]["/v1/threads"]["post"]
            example = operation["requestBody"]["content"]["application/json"]["examples"]["example1"]["value"]
            header = next(p for p in operation["parameters"] if p["name"] == "X-Bridge-User")
            answer = await client.post("/v1/threads", json=example, headers={"X-Bridge-User": header["example"]})
            assert answer.status_code == 201, answer.text
            assert set(data_of(answer)) == {"thread_id", "response_id", "user_message_id"}


@pytest.mark.parametrize(
    ("body", "said"),
    [
        # The mistake of the issue: the message as a string where an object is wanted.
        ({"message": "How many orders shipped late?"}, 'message: must be a JSON object, e.g. {"text": '),
        (["How many orders shipped late?"], 'the body: must be a JSON object, e.g. {"message": {"text": '),
        ({"message": {"text": "Hi"}, "user_profile": {"groups": "sales"}}, 'user_profile.groups: must be a JSON '
         'array, e.g. ["sales"]'),
    ],
)  # fmt: skip
def test_a_body_of_the_wrong_shape_is_told_the_shape_wanted(docs_url: str, body: Any, said: str) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "X-Bridge-User": "alice"}
    answer = httpx2.post(docs_url + "/v1/threads", json=body, headers=headers)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request"
    assert said in error["message"]
    assert "shipped late" not in error["message"]  # the caller's input is not echoed


OPERATIONS = "[...document.querySelectorAll('.opblock')].map((o) => o.id)"
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
REDOC_OPERATIONS = "[...document.querySelectorAll('[data-section-id^=\"operation/\"]')].map((o) => o.dataset.sectionId)"


@requires_chromium
async def test_swagger_ui_lists_every_operation_in_chromium(docs_url: str, tmp_path: Path) -> None:
    document = httpx2.get(docs_url + "/openapi.json").json()
    count = sum(1 for _ in _operations(document))
    async with chromium_page(tmp_path / "profile") as page:
        await page.call("Page.navigate", {"url": docs_url + "/docs"})
        shown = await page.wait_until(OPERATIONS, lambda ids: len(ids) == count)
        assert "operations-threads-createThread" in shown
        authorize = await page.evaluate("document.querySelector('.auth-wrapper .authorize')?.textContent ?? null")
        assert authorize is not None and "Authorize" in authorize
        assert page.devtools.problems == []  # no script or style refused by the policy, no failed load


@requires_chromium
async def test_redoc_lists_every_operation_in_chromium(docs_url: str, tmp_path: Path) -> None:
    document = httpx2.get(docs_url + "/openapi.json").json()
    count = sum(1 for _ in _operations(document))
    async with chromium_page(tmp_path / "profile") as page:
        await page.call("Page.navigate", {"url": docs_url + "/redoc"})
        shown = await page.wait_until(REDOC_OPERATIONS, lambda ids: len(ids) == count)
        assert "operation/createThread" in shown
        # ReDoc's sidebar has a "Redocly" logo it loads from its CDN: the policy refuses it (the logo hides
        # itself), which is the one refusal expected; nothing else may fail.
        await page.wait_until("0", lambda _: any(REDOCLY_LOGO in p for p in page.devtools.problems))  # drawn late
        refused = [problem for problem in page.devtools.problems if REDOCLY_LOGO in problem]
        assert len(refused) == 1 and "violates the following Content Security Policy" in refused[0]
        assert [problem for problem in page.devtools.problems if REDOCLY_LOGO not in problem] == []


CREATE = "#operations-threads-createThread"
STATUS = f"document.querySelector('{CREATE} .live-responses-table tbody .response-col_status')?.textContent ?? null"


async def click_until(page: Any, selector: str, expression: str) -> None:
    """Click "Try it out" (`selector`) until `expression` holds: Swagger UI draws the deep-linked operation before
    React has bound its buttons, so a click that lands first does nothing (seen on a loaded machine). The button
    toggles ("Cancel" once on), so it is clicked again only while it still says "Try it out"."""
    label = f"document.querySelector({json.dumps(selector)})?.textContent.trim() ?? null"
    for _ in range(40):
        if await page.evaluate(expression):
            return
        if await page.evaluate(label) == "Try it out":
            await page.click(selector)
        await asyncio.sleep(0.25)
    await page.wait_until(expression, bool)  # fails with what the page shows


@requires_chromium
async def test_trying_a_request_in_swagger_ui_needs_the_service_key(docs_url: str, tmp_path: Path) -> None:
    """ "Try it out" sends the example as it stands: 401 with no key, a new thread once the key is authorized."""
    async with chromium_page(tmp_path / "profile") as page:
        await page.call("Page.navigate", {"url": docs_url + "/docs#/threads/createThread"})
        await page.wait_until(f"!!document.querySelector('{CREATE} .try-out__btn')", bool)
        await click_until(page, f"{CREATE} .try-out__btn", f"!!document.querySelector('{CREATE} .execute')")
        body = await page.evaluate(f"document.querySelector('{CREATE} textarea.body-param__text').value")
        assert json.loads(body) == {"message": {"text": "What was revenue by region last quarter?"}}
        await page.click(f"{CREATE} .execute")
        assert (await page.wait_until(STATUS, bool)).strip() == "401"

        await page.click(".auth-wrapper .authorize")
        await page.wait_until("!!document.getElementById('auth-bearer-value')", bool)
        await page.type_into("#auth-bearer-value", KEY)
        await page.click(".auth-btn-wrapper button.authorize")
        await page.wait_until(
            "document.querySelector('.auth-container h6')?.textContent ?? null", lambda said: said == "Authorized"
        )
        await page.click(".auth-btn-wrapper .btn-done")
        await page.wait_until("!document.querySelector('.modal-ux')", bool)
        await page.click(f"{CREATE} .execute")
        assert (
            await page.wait_until(STATUS, lambda status: status is not None and "401" not in status)
        ).strip() == "201"
        answer = await page.evaluate(
            f"document.querySelector('{CREATE} .live-responses-table tbody .microlight')?.textContent"
        )
        assert json.loads(answer)["data"]["thread_id"].startswith("thr_")
        assert page.devtools.problems == []
        # The key lived in the tab only.
        assert await page.evaluate("JSON.stringify(localStorage)") == "{}"
