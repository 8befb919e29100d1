"""A property-based fuzz run over the service's own OpenAPI description: no request may make it fail (5xx).

schemathesis reads `/openapi.json` from the service on loopback and, for each operation, sends requests that
hypothesis generates from the schemas (valid and invalid bodies, ids, query values and headers), with a test
key and a fixed `X-Bridge-User` so the requests get past authentication to the handlers. It is driven through
schemathesis' Python API (each operation's strategy under `@given`): its pytest plugin's fixture loader reads
a node attribute that pytest 9 no longer has. Every answer must be
a documented status in a documented shape, and never a server error. The run is bounded (`max_examples` per
operation) so it stays a few seconds; the service has its own sandbox, since generated user profiles are
upserted into Omni.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

from omni_bridge._serving import serve_asgi_in_thread
from omni_bridge.sandbox import Sandbox
from omni_bridge.server import create_app
from omni_bridge.testing import FakeAnthropic, text_reply
from tests.conftest import Served
from tests.server.service_helpers import KEY, service_settings

FUZZ_USER = "fuzz-user"
EXAMPLES = 12
"""Generated requests per operation and mode (valid, then invalid data)."""


@pytest.fixture(scope="module")
def fuzz_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    sandbox = Sandbox()
    fake = FakeAnthropic(responder=lambda _request: text_reply("A fuzzed answer."))
    with sandbox.run_in_thread() as sandbox_url, fake.run_in_thread() as fake_url:
        served = Served(sandbox, sandbox_url)
        settings_ = service_settings(served, tmp_path_factory.mktemp("fuzz"), fake_url)
        with serve_asgi_in_thread(create_app(settings_)) as url:
            yield url


# The service runs in a thread of this process, and once a test has installed OpenTelemetry's SDK its trace ids
# come from the `random` module while hypothesis draws cases in this thread: hypothesis then warns that a
# strategy used `random`, which is about the service's spans, not about the fuzzing.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
def test_no_generated_request_makes_the_service_fail(fuzz_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_url}/openapi.json")
    headers = {"Authorization": f"Bearer {KEY}", "X-Bridge-User": FUZZ_USER}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    failures: list[str] = []
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # the description itself is valid
        operations.append(result.ok())
    assert len(operations) >= 15  # the thread API, the AI jobs API, the page and the health check
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(mode))
            def check(case: schemathesis.Case[Any]) -> None:
                case.call_and_validate(base_url=fuzz_url, headers=headers, checks=checks)

            try:
                check()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing of the operation can be made invalid
            except Exception as exc:  # collected, so one run reports every operation that failed
                # a failure hypothesis could not repeat comes as a group: its members say what failed, and how
                causes = "".join(f"\n  - {type(e).__name__}: {e}" for e in getattr(exc, "exceptions", ()))
                failures.append(f"{operation.label} ({mode.value}): {exc}{causes}")
    assert not failures, "\n\n".join(failures)
