"""`GET /metrics`: the worker's Prometheus metrics, in the text exposition format.

What it shows: the process-wide metrics of `omni_bridge._telemetry` (answers and errors by type, runs in
flight, Omni REST, Messages API and tool latency, tokens), prometheus_client's process and Python metrics,
and this worker's MCP session pool (`SessionPool.stats()`, read at each scrape).

Who may read it is `BRIDGE_METRICS`: `open` (the default) answers anyone, as Prometheus scrapes without
credentials unless told otherwise and `/health` is open too: the metrics hold counts and timings labelled by
engine, outcome, error type, tool, model and route template, never a user, thread, tenant or key. `key` asks
for any valid service key (`Authorization: Bearer`, no `X-Bridge-User`), for a service reachable by people
who should not see its traffic; `off` serves no route at all (404).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from omni_bridge.server._auth import tenant_from_request
from omni_bridge.server._service import Service

__all__ = ["metrics_routes"]


class _PoolCollector(Collector):
    """The session pool's numbers at scrape time (nothing while the bridge is not running)."""

    def __init__(self, service: Service) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self._service.bridge.pool.stats()
        except RuntimeError:  # the bridge is not running (starting, or shut down)
            return
        gauges = (
            ("omni_bridge_mcp_sessions_open", "Pooled MCP sessions open.", stats.open),
            ("omni_bridge_mcp_sessions_opening", "MCP sessions being opened.", stats.opening),
            ("omni_bridge_mcp_calls_in_flight", "MCP tool calls running.", stats.in_flight),
        )
        for name, documentation, value in gauges:
            yield GaugeMetricFamily(name, documentation, value=value)
        counters = (
            ("omni_bridge_mcp_sessions_opened", "MCP sessions opened.", stats.opened_total),
            ("omni_bridge_mcp_sessions_expired", "MCP sessions Omni had forgotten, reopened.", stats.expired_total),
            ("omni_bridge_mcp_sessions_closed", "MCP sessions closed (idle, evicted, shut down).", stats.closed_total),
            ("omni_bridge_mcp_calls", "MCP tool calls made.", stats.calls_total),
        )
        for name, documentation, value in counters:
            yield CounterMetricFamily(name, documentation, value=value)


def metrics_routes(service: Service) -> list[BaseRoute]:
    """The `/metrics` route as `BRIDGE_METRICS` says (`off`: none)."""
    mode = service.settings.bridge_metrics
    if mode == "off":
        return []
    pool = CollectorRegistry(auto_describe=False)
    pool.register(_PoolCollector(service))

    async def metrics(request: Request) -> Response:
        if mode == "key":
            tenant_from_request(request, service.keys)  # 401 without a valid service key
        body = generate_latest(REGISTRY) + generate_latest(pool)
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})

    return [Route("/metrics", metrics, methods=["GET"], include_in_schema=False)]
