"""The policy worker's Prometheus metrics, on `prometheus_client` (also used by the API, agent/api/metrics.py).

Each `WorkerMetrics` owns its own `CollectorRegistry`, so several workers in one process (tests, the Ray Serve
ingress beside a plain worker) never share or collide on counters. The names are the dashboards' contract: change
them only together with docs/deployment.md.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# `generate_latest` writes text format 0.0.4 for our plain ASCII names; say so (Prometheus 3 picks its parser by it).
# Spelled out: newer prometheus_client versions default to announcing 1.0.0.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS_S: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 32)


class WorkerMetrics:
    """The policy worker's metric set, named once so the server, the fleet ingress, tests and dashboards agree."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "hearth_policy_requests", "Requests handled, by kind (act, subtask) and outcome.", ("kind", "outcome"),
            registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "hearth_policy_errors",
            "Errors by reason: decode (not msgpack-numpy), bad_input, internal, auth, disconnect, replica_lost.",
            ("reason",),
            registry=r,
        )
        self.connections_total = Counter("hearth_policy_connections", "WebSocket connections accepted.", registry=r)
        self.connections_open = Gauge(
            "hearth_policy_connections_open", "WebSocket connections currently open.", registry=r
        )
        self.queue_depth = Gauge("hearth_policy_queue_depth", "Requests waiting for the inference thread.", registry=r)
        self.request_latency = Histogram(
            "hearth_policy_request_seconds", "Server-side request time, message received to reply sent.", ("kind",),
            buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.inference_latency = Histogram(
            "hearth_policy_inference_seconds", "Model time per batch (act_batch or subtask call).", ("kind",),
            buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.queue_latency = Histogram(
            "hearth_policy_queue_seconds", "Time a request waited before its batch started.", buckets=LATENCY_BUCKETS_S,
            registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "hearth_policy_batch_size", "Requests per model call.", ("kind",), buckets=BATCH_SIZE_BUCKETS, registry=r
        )

    def value(self, sample: str, **labels: str) -> float:
        """One exposed sample's current value, 0 when it has not been recorded (e.g. `hearth_policy_requests_total`)."""
        return self.registry.get_sample_value(sample, labels) or 0.0

    def render(self) -> str:
        """The Prometheus text exposition of every metric, for `GET /metrics`."""
        return generate_latest(self.registry).decode()
