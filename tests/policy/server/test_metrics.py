"""The worker's metrics on prometheus_client: the names dashboards read, per-worker registries, parseable text."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from policy.metrics import WorkerMetrics


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse the exposition with prometheus_client's own parser (what a scraper does)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_recorded_numbers_are_the_exposed_numbers_under_the_dashboard_names() -> None:
    metrics = WorkerMetrics()
    metrics.requests.labels(kind="act", outcome="ok").inc(3)
    metrics.errors.labels(reason="decode").inc()
    metrics.connections_open.inc()
    metrics.batch_size.labels(kind="act").observe(2)
    metrics.request_latency.labels(kind="act").observe(0.04)
    samples = _samples(metrics.render())
    assert samples[("hearth_policy_requests_total", (("kind", "act"), ("outcome", "ok")))] == 3
    assert samples[("hearth_policy_errors_total", (("reason", "decode"),))] == 1
    assert samples[("hearth_policy_connections_open", ())] == 1
    assert samples[("hearth_policy_batch_size_bucket", (("kind", "act"), ("le", "2.0")))] == 1
    assert samples[("hearth_policy_batch_size_bucket", (("kind", "act"), ("le", "1.0")))] == 0
    assert samples[("hearth_policy_request_seconds_count", (("kind", "act"),))] == 1
    assert metrics.value("hearth_policy_requests_total", kind="act", outcome="ok") == 3
    assert metrics.value("hearth_policy_requests_total", kind="subtask", outcome="ok") == 0  # never recorded


def test_each_worker_counts_for_itself() -> None:
    """Two workers in one process (tests, the fleet ingress beside a worker) share no counter."""
    first, second = WorkerMetrics(), WorkerMetrics()
    first.connections_total.inc()
    assert first.value("hearth_policy_connections_total") == 1
    assert second.value("hearth_policy_connections_total") == 0
