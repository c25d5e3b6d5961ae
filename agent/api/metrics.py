"""The API's Prometheus metrics (`GET /metrics`, on prometheus_client like the policy worker's policy/metrics.py).

- `hearth_api_request_seconds{method, route, status}`: request latency by route *template* (`/api/v1/tasks/{task_id}`,
  never the raw path, so ids do not explode the label set; "unmatched" for paths no route knows), measured by a plain ASGI middleware around every HTTP
  request, including those refused with 401/404/422.
- `hearth_api_tasks{state}`: tasks in the store by state, and `hearth_api_live_viewers{robot_id}`: open live
  WebSocket viewers. Both are read when scraped (a collector), so the orchestrator and the live hub carry no metric code
  and the numbers cannot drift from the store and the hub.
The route needs a token with `robots:read` (every role has it): robot ids and task counts are not public.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.api.auth import Permission, require
from agent.api.context import ApiContext
from agent.store import schema

router = APIRouter(tags=["health"])
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # as policy/metrics.py: the format generate_latest writes
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _LiveState(Collector):
    """Task counts by state (from the store) and live viewers per robot (from the hub), read at scrape time."""

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def collect(self) -> Iterator[Metric]:
        ctx = self._ctx
        tasks = GaugeMetricFamily("hearth_api_tasks", "Tasks in the store, by state.", labels=["state"])
        with ctx.store.engine.connect() as conn:
            rows = conn.execute(sa.select(schema.tasks.c.state, sa.func.count()).group_by(schema.tasks.c.state))
            for state, count in rows:
                tasks.add_metric([str(state)], float(count))
        yield tasks
        viewers = GaugeMetricFamily("hearth_api_live_viewers", "Open live WebSocket viewers.", labels=["robot_id"])
        for robot_id in ctx.registry.ids():
            viewers.add_metric([robot_id], float(ctx.hub.viewers(robot_id)))
        yield viewers


class ApiMetrics:
    """One app's metrics: its own registry, so several apps in one process (tests) never share counters."""

    def __init__(self, ctx: ApiContext) -> None:
        self.registry = CollectorRegistry()
        self.request_latency = Histogram(
            "hearth_api_request_seconds", "HTTP request time, by method, route template and status code.",
            ("method", "route", "status"), buckets=LATENCY_BUCKETS_S, registry=self.registry,
        )  # fmt: skip
        self.registry.register(_LiveState(ctx))

    def value(self, sample: str, **labels: str) -> float:
        """One exposed sample's current value, 0 when absent."""
        return self.registry.get_sample_value(sample, labels) or 0.0

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestTimer:
    """ASGI middleware: times every HTTP request and records it under its route template once routing has run."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception that escapes every handler ends up as a 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.request_latency.labels(scope["method"], route_template(scope), str(status)).observe(
                time.perf_counter() - started
            )


def route_template(scope: Scope) -> str:
    """`/api/v1/tasks/{task_id}` for `/api/v1/tasks/abc`: each segment that is a path parameter's value becomes its
    name, so ids never become label values; "unmatched" when no route matched (random 404 paths neither)."""
    if scope.get("route") is None:
        return "unmatched"
    names = {str(value): name for name, value in (scope.get("path_params") or {}).items()}
    return "/".join("{" + names[part] + "}" if part in names else part for part in scope["path"].split("/"))


@router.get(
    "/metrics",
    summary="Prometheus metrics: request latency by route, tasks by state, live viewers",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}}},
)
def metrics(request: Request, _token=Depends(require(Permission.ROBOTS_READ))) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
