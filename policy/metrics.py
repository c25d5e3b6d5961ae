"""Prometheus text-format metrics (exposition format 0.0.4) for the policy worker, without a client library.

Why hand-written: the worker needs four metric shapes (counter, gauge, histogram, labels) and a `/metrics`
text endpoint; that is ~150 lines, avoids a dependency, and keeps rendering thread-safe while the inference
thread and the event loop both update values.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS_S: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 32)


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _label_text(names: Sequence[str], values: Sequence[str], extra: tuple[str, str] | None = None) -> str:
    pairs = [f'{n}="{_escape_label_value(v)}"' for n, v in zip(names, values, strict=True)]
    if extra is not None:
        pairs.append(f'{extra[0]}="{_escape_label_value(extra[1])}"')
    return "{" + ",".join(pairs) + "}" if pairs else ""


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()):
        self.name = name
        self.help_text = help_text
        self.label_names = tuple(label_names)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.label_names):
            raise ValueError(f"metric {self.name} takes labels {list(self.label_names)}, got {sorted(labels)}")
        return tuple(str(labels[n]) for n in self.label_names)

    def header(self) -> list[str]:
        help_text = self.help_text.replace("\\", "\\\\").replace("\n", "\\n")
        return [f"# HELP {self.name} {help_text}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError


class _ScalarMetric(_Metric):
    """One float per label set: the storage, reading and rendering that counters and gauges share."""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()):
        super().__init__(name, help_text, label_names)
        self._values: dict[tuple[str, ...], float] = {}

    def _add(self, amount: float, labels: dict[str, str]) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_label_text(self.label_names, k)} {_format_value(v)}" for k, v in items]


class Counter(_ScalarMetric):
    """Monotonic count (requests, errors). Only goes up."""

    kind = "counter"

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter can only increase")
        self._add(amount, labels)


class Gauge(_ScalarMetric):
    """A value that goes up and down (open connections, queue depth)."""

    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self._add(amount, labels)

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        self._add(-amount, labels)


class Histogram(_Metric):
    """Cumulative-bucket histogram (latencies, batch sizes), rendered as _bucket/_sum/_count."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Iterable[float], label_names: Sequence[str] = ()):
        super().__init__(name, help_text, label_names)
        bounds = sorted(float(b) for b in buckets)
        if not bounds or any(math.isinf(b) for b in bounds):
            raise ValueError("histogram needs finite bucket bounds; +Inf is added automatically")
        self.bounds = (*bounds, math.inf)
        self._counts: dict[tuple[str, ...], list[int]] = {}
        self._sums: dict[tuple[str, ...], float] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            counts = self._counts.setdefault(key, [0] * len(self.bounds))
            for i, bound in enumerate(self.bounds):
                if value <= bound:
                    counts[i] += 1
                    break
            self._sums[key] = self._sums.get(key, 0.0) + float(value)

    def count(self, **labels: str) -> int:
        with self._lock:
            return sum(self._counts.get(self._key(labels), []))

    def total(self, **labels: str) -> float:
        with self._lock:
            return self._sums.get(self._key(labels), 0.0)

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted((k, list(c), self._sums[k]) for k, c in self._counts.items())
        lines: list[str] = []
        for key, counts, total in items:
            cumulative = 0
            for bound, n in zip(self.bounds, counts, strict=True):
                cumulative += n
                labels = _label_text(self.label_names, key, ("le", _format_value(bound)))
                lines.append(f"{self.name}_bucket{labels} {cumulative}")
            plain = _label_text(self.label_names, key)
            lines.append(f"{self.name}_sum{plain} {_format_value(total)}")
            lines.append(f"{self.name}_count{plain} {cumulative}")
        return lines


class Registry:
    """The set of metrics one process exposes at /metrics."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def _add(self, metric: _Metric) -> _Metric:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name} is already registered")
            self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        return self._add(Counter(name, help_text, labels))  # type: ignore[return-value]

    def gauge(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Gauge:
        return self._add(Gauge(name, help_text, labels))  # type: ignore[return-value]

    def histogram(self, name: str, help_text: str, buckets: Iterable[float], labels: Sequence[str] = ()) -> Histogram:
        return self._add(Histogram(name, help_text, buckets, labels))  # type: ignore[return-value]

    def render(self) -> str:
        with self._lock:
            metrics = list(self._metrics.values())
        lines: list[str] = []
        for metric in metrics:
            lines.extend(metric.header())
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"


class WorkerMetrics:
    """The policy worker's metric set, named once so the server, tests and dashboards agree."""

    def __init__(self) -> None:
        self.registry = Registry()
        r = self.registry
        self.requests = r.counter(
            "hearth_policy_requests_total", "Requests handled, by kind (act, subtask) and outcome.", ("kind", "outcome")
        )
        self.errors = r.counter(
            "hearth_policy_errors_total",
            "Errors by reason: decode (not msgpack-numpy), bad_input, internal, auth, disconnect.",
            ("reason",),
        )
        self.connections_total = r.counter("hearth_policy_connections_total", "WebSocket connections accepted.")
        self.connections_open = r.gauge("hearth_policy_connections_open", "WebSocket connections currently open.")
        self.queue_depth = r.gauge("hearth_policy_queue_depth", "Requests waiting for the inference thread.")
        self.request_latency = r.histogram(
            "hearth_policy_request_seconds",
            "Server-side request time, message received to reply sent.",
            LATENCY_BUCKETS_S,
            ("kind",),
        )
        self.inference_latency = r.histogram(
            "hearth_policy_inference_seconds", "Model time per batch (act_batch or subtask call).", LATENCY_BUCKETS_S, ("kind",)
        )
        self.queue_latency = r.histogram(
            "hearth_policy_queue_seconds", "Time a request waited before its batch started.", LATENCY_BUCKETS_S
        )
        self.batch_size = r.histogram("hearth_policy_batch_size", "Requests per model call.", BATCH_SIZE_BUCKETS, ("kind",))

    def render(self) -> str:
        return self.registry.render()
