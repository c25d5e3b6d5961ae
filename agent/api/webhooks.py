"""Outgoing webhooks: task state changes POSTed to home-automation endpoints, signed with HMAC-SHA256.

Signature header (Stripe-style, so receivers can reject replays):
    X-Hearth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
Deliveries run on one background thread per endpoint with retries and exponential backoff, so a slow or dead
receiver never delays the API or the robot; a full queue drops the newest delivery with a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import uuid
from typing import Any

import httpx

from agent.settings import WebhookConfig

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hearth-Signature"
QUEUE_SIZE = 1000


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """What a receiver does: recompute the MAC and check the timestamp is recent (constant-time compare)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


class _Endpoint:
    """One receiver: its queue and delivery thread."""

    def __init__(self, config: WebhookConfig, backoff_s: float):
        self.config = config
        self.backoff_s = backoff_s
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self.delivered = 0
        self.failed = 0
        self._stop = threading.Event()
        self._client = httpx.Client(timeout=config.timeout_s)
        self.thread = threading.Thread(target=self._run, name=f"webhook:{config.url}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            payload = self.queue.get()
            if payload is None:
                break
            self._deliver(payload)
        self._client.close()

    def _deliver(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
        for attempt in range(1, self.config.max_attempts + 1):
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(self.config.secret, body, int(time.time())),
                "X-Hearth-Event": str(payload["event"]),
                "X-Hearth-Delivery": str(payload["delivery_id"]),
                "X-Hearth-Attempt": str(attempt),
            }
            try:
                response = self._client.post(self.config.url, content=body, headers=headers)
                if response.status_code < 300:
                    self.delivered += 1
                    return
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = repr(exc)
            logger.warning(
                "webhook delivery failed", extra={"url": self.config.url, "attempt": attempt, "problem": problem}
            )
            if attempt < self.config.max_attempts and self._stop.wait(self.backoff_s * 2 ** (attempt - 1)):
                break
        self.failed += 1

    def close(self, timeout: float) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(None)
        self.thread.join(timeout)


class WebhookDispatcher:
    def __init__(self, configs: list[WebhookConfig], backoff_s: float = 0.5):
        self._endpoints = [_Endpoint(config, backoff_s) for config in configs]

    def notify(self, event: str, robot_id: str, task_id: str | None, data: dict[str, Any]) -> None:
        """Queue a delivery to every endpoint subscribed to `event`; never blocks."""
        payload = {
            "delivery_id": uuid.uuid4().hex,
            "event": event,
            "robot_id": robot_id,
            "task_id": task_id,
            "sent_at": time.time(),
            "data": data,
        }
        for endpoint in self._endpoints:
            if event not in endpoint.config.events:
                continue
            try:
                endpoint.queue.put_nowait(payload)
            except queue.Full:
                logger.warning("webhook queue full, delivery dropped", extra={"url": endpoint.config.url})

    def stats(self) -> list[dict[str, Any]]:
        return [
            {"url": e.config.url, "delivered": e.delivered, "failed": e.failed, "queued": e.queue.qsize()}
            for e in self._endpoints
        ]

    def close(self, timeout: float = 5.0) -> None:
        for endpoint in self._endpoints:
            endpoint.close(timeout)
