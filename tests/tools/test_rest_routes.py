"""Omni REST calls are named by route template in spans and metrics: ids become `{id}`, fixed words stay."""

from __future__ import annotations

import pytest

from omni_bridge.tools._telemetry import route_template


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/api/v1/ai/jobs", "/api/v1/ai/jobs"),
        ("/api/v1/ai/jobs/3f2a9c1e-0000-4000-8000-000000000001", "/api/v1/ai/jobs/{id}"),
        ("/api/v1/ai/jobs/job-42/result", "/api/v1/ai/jobs/{id}/result"),
        ("/api/v1/ai/jobs/job%2F42/cancel", "/api/v1/ai/jobs/{id}/cancel"),
        ("/api/v1/models/9a1b/topic", "/api/v1/models/{id}/topic"),
        ("/api/v1/ai/conversations/c-1", "/api/v1/ai/conversations/{id}"),
        ("/api/scim/v2/embed/users", "/api/scim/v2/embed/users"),
        ("/api/scim/v2/embed/Users/u-7", "/api/scim/v2/embed/Users/{id}"),
        ("/api/v0/users/embed", "/api/v0/users/embed"),
        ("/api/v1/query/run", "/api/v1/query/run"),
        ("/api/v1/ai/jobs/j-1?userId=u-7", "/api/v1/ai/jobs/{id}"),
    ],
)
def test_ids_in_a_path_become_placeholders(path: str, template: str) -> None:
    assert route_template(path) == template
