"""Webhooks against a real HTTP receiver on loopback: HMAC signature, retries, replay protection."""

from __future__ import annotations

import json
import time

import pytest

from agent.api.ratelimit import RateLimiter
from agent.api.webhooks import SIGNATURE_HEADER, WebhookDispatcher, sign, verify
from agent.settings import WebhookConfig
from tests.agent.api.support import Receiver
from tests.support import wait_until

SECRET = "a-long-shared-secret-for-tests"


def test_signed_delivery_verifies_and_tampering_fails():
    with Receiver() as receiver:
        dispatcher = WebhookDispatcher([WebhookConfig(url=receiver.url, secret=SECRET)])
        dispatcher.notify("task_state", "r1", "t1", {"state": "succeeded", "previous": "running"})
        dispatcher.notify("subtask", "r1", "t1", {"text": "not subscribed"})
        wait_until(lambda: receiver.requests, timeout=10, what="webhook delivery")
        dispatcher.close()
    assert len(receiver.requests) == 1  # the endpoint subscribed only to task_state
    headers, body = receiver.requests[0]
    assert verify(SECRET, body, headers[SIGNATURE_HEADER])
    assert not verify("another-secret-of-enough-length", body, headers[SIGNATURE_HEADER])
    assert not verify(SECRET, body.replace(b"succeeded", b"failed"), headers[SIGNATURE_HEADER])
    payload = json.loads(body)
    assert payload["event"] == "task_state" and payload["task_id"] == "t1"
    assert payload["data"] == {"state": "succeeded", "previous": "running"}
    assert headers["X-Hearth-Event"] == "task_state"


def test_old_signatures_are_rejected_as_replays():
    body = b'{"x":1}'
    old = sign(SECRET, body, int(time.time()) - 3600)
    assert not verify(SECRET, body, old, tolerance_s=300)
    assert verify(SECRET, body, old, tolerance_s=7200)
    assert not verify(SECRET, body, "garbage")


def test_failed_deliveries_are_retried_with_the_same_delivery_id():
    with Receiver(fail_first=2) as receiver:
        dispatcher = WebhookDispatcher([WebhookConfig(url=receiver.url, secret=SECRET, max_attempts=4)], backoff_s=0.01)
        dispatcher.notify("task_state", "r1", "t9", {"state": "failed"})
        wait_until(lambda: len(receiver.requests) >= 3, timeout=10, what="three attempts")
        wait_until(lambda: dispatcher.stats()[0]["delivered"] == 1, timeout=10, what="delivery counted")
        dispatcher.close()
    ids = {headers["X-Hearth-Delivery"] for headers, _ in receiver.requests}
    assert len(ids) == 1
    assert [headers["X-Hearth-Attempt"] for headers, _ in receiver.requests] == ["1", "2", "3"]
    assert dispatcher.stats()[0]["failed"] == 0


def test_unreachable_receiver_gives_up_and_counts_a_failure():
    dispatcher = WebhookDispatcher(
        [WebhookConfig(url="http://127.0.0.1:9/nowhere", secret=SECRET, max_attempts=2, timeout_s=1)], backoff_s=0.01
    )
    dispatcher.notify("task_state", "r1", "t1", {"state": "aborted"})
    wait_until(lambda: dispatcher.stats()[0]["failed"] == 1, timeout=15, what="failure counted")
    dispatcher.close()


def test_short_secrets_are_rejected_by_config():
    with pytest.raises(ValueError):
        WebhookConfig(url="http://x", secret="short")


def test_rate_limiter_token_bucket():
    now = [0.0]
    limiter = RateLimiter(per_minute=3, clock=lambda: now[0])
    assert [limiter.try_acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.try_acquire("a")
    assert wait == pytest.approx(20.0)  # one token per 20 s
    assert limiter.try_acquire("b") == 0.0  # buckets are per token
    now[0] = 20.0
    assert limiter.try_acquire("a") == 0.0
    assert limiter.try_acquire("a") > 0
