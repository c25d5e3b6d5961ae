"""Prometheus text exposition: the numbers we record are the numbers /metrics shows."""

from __future__ import annotations

import re
import threading

import pytest

from policy.metrics import Registry, WorkerMetrics


def _sample(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split(" ")[-1])
    raise AssertionError(f"no sample {line_start!r} in:\n{text}")


def test_counter_gauge_histogram_render_in_text_format() -> None:
    registry = Registry()
    requests = registry.counter("reqs_total", "Requests.", ("kind",))
    open_ = registry.gauge("open", "Open connections.")
    latency = registry.histogram("lat_seconds", "Latency.", (0.1, 1.0), ("kind",))
    requests.inc(kind="act")
    requests.inc(2, kind="act")
    requests.inc(kind='sub"task')
    open_.inc()
    open_.inc()
    open_.dec()
    for value in (0.05, 0.5, 0.5, 3.0):
        latency.observe(value, kind="act")
    text = registry.render()
    assert "# TYPE reqs_total counter" in text
    assert "# HELP lat_seconds Latency." in text
    assert _sample(text, 'reqs_total{kind="act"}') == 3
    assert _sample(text, 'reqs_total{kind="sub\\"task"}') == 1
    assert _sample(text, "open") == 1
    assert _sample(text, 'lat_seconds_bucket{kind="act",le="0.1"}') == 1
    assert _sample(text, 'lat_seconds_bucket{kind="act",le="1"}') == 3
    assert _sample(text, 'lat_seconds_bucket{kind="act",le="+Inf"}') == 4
    assert _sample(text, 'lat_seconds_count{kind="act"}') == 4
    assert _sample(text, 'lat_seconds_sum{kind="act"}') == pytest.approx(4.05)
    # every non-comment line is "name{labels} value"
    for line in text.strip().splitlines():
        assert line.startswith("#") or re.fullmatch(r'[a-z_]+(\{[^}]*\})? [-+0-9.eInfNa]+', line), line


def test_wrong_labels_and_negative_counter_increments_are_refused() -> None:
    registry = Registry()
    counter = registry.counter("c_total", "C.", ("kind",))
    with pytest.raises(ValueError, match="labels"):
        counter.inc(other="x")
    with pytest.raises(ValueError, match="increase"):
        counter.inc(-1, kind="a")
    with pytest.raises(ValueError, match="already registered"):
        registry.counter("c_total", "again")


def test_concurrent_updates_are_not_lost() -> None:
    metrics = WorkerMetrics()

    def work() -> None:
        for _ in range(2000):
            metrics.requests.inc(kind="act", outcome="ok")
            metrics.batch_size.observe(2, kind="act")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert metrics.requests.value(kind="act", outcome="ok") == 8000
    assert metrics.batch_size.count(kind="act") == 8000
    assert _sample(metrics.render(), 'hearth_policy_batch_size_sum{kind="act"}') == 16000
