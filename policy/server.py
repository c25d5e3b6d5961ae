"""The policy worker: an openpi-compatible WebSocket server for System 1 (actions) and System 2 (subtasks).

Wire (Physical-Intelligence/openpi src/openpi/serving/websocket_policy_server.py, packages/openpi-client/src/openpi_client/
websocket_client_policy.py): on open the server sends one binary msgpack frame with metadata (the policy's
camera/state/action names, horizon, control rate, and the robot interface it was trained on: `robot_type` and
`robot_interface_version`, None when not recorded, so a remote agent can refuse a mismatch); then each
binary request `msgpack(obs)` gets one binary reply with `actions`, `server_timing` and `policy_timing`. Errors
are a text frame (the message, or a traceback for internal failures) followed by close 1011 — exactly what the
unmodified `openpi_client.WebsocketClientPolicy` expects. `GET /healthz` answers "OK\n"; `GET /metrics` answers
Prometheus text.

Why the shape of this module:
- Inference runs on one dedicated thread (`InferenceBatcher`), never on the event loop, so health checks,
  metrics and keepalive pings answer while the model works (openpi's server blocks its loop; issue #717).
- Requests that arrive together from several robots are batched through `Pi05Policy.act_batch`: the batcher
  waits at most `batch_wait_ms` after the first request and takes at most `max_batch`. One model call per batch
  keeps a GPU busy; the bounds keep a lone robot's latency low.
- One bad request never hurts anyone else: decoding and validation happen per connection; if a batched model
  call fails, its members are retried one by one so only the culprit gets the error.
- Start-up warms the model up on the inference thread (on CUDA: captures the fast path's CUDA graphs for every
  batch bucket, policy/fast_path.py) before the worker reports healthy: until then `/healthz` answers 503
  "warming up" and WebSocket handshakes are refused, so no robot's first chunk pays for graph capture.
- Extensions are additive keys (policy/mappings.py): `hearth/subtask`, `hearth/prev_chunk` + `hearth/delay`
  (real-time chunking continuation), `hearth/episode_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from hearth_wire.codec import WireError, packb, unpackb
from hearth_wire.service import WebSocketService, text_response
from policy.mappings import (
    DEFAULT_MAX_IMAGE_SIDE,
    EPISODE_KEY,
    EXTENSION_KEYS,
    ObservationMapping,
    PolicyRequest,
    PolicySpec,
    cap_error,
    control_ack,
    get_mapping,
)
from policy.metrics import CONTENT_TYPE, WorkerMetrics
from policy.types import PolicyInputError

if TYPE_CHECKING:
    from policy.inference import Pi05Policy

logger = logging.getLogger(__name__)

INTERNAL_ERROR_REASON = "Internal server error. Traceback included in previous frame."
BAD_REQUEST_REASON = "Bad request. Details in previous frame."
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024


@dataclass
class InferenceResult:
    """What the inference thread hands back for one request."""

    actions: np.ndarray | None = None
    subtask: str | None = None
    queue_ms: float = 0.0
    model_ms: float = 0.0
    batch_size: int = 1


@dataclass
class _Job:
    request: PolicyRequest
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


def _deliver(future: asyncio.Future, result: InferenceResult | None, error: BaseException | None) -> None:
    if future.done():  # the connection went away and its handler was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class InferenceBatcher:
    """One thread that owns the model: collects requests into bounded batches and runs them.

    The model is not thread-safe (and a GPU serialises work anyway), so exactly one thread calls it.
    """

    def __init__(
        self,
        policy: Pi05Policy,
        max_batch: int,
        batch_wait_s: float,
        metrics: WorkerMetrics,
        peers: Callable[[], int] | None = None,
        warmup: Callable[[], object] | None = None,
    ):
        """`warmup` runs first on the inference thread (the thread that will replay any CUDA graphs it captures);
        `warm` is set when it has finished, `warmup_error` holds its exception if it failed."""
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        if batch_wait_s < 0:
            raise ValueError("batch wait must be >= 0")
        self.policy = policy
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        self.metrics = metrics
        # How many connections could still add to a batch; waiting longer than that is pure latency.
        self.peers = peers
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.warmup = warmup
        self.warm = threading.Event()
        self.warmup_error: BaseException | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="policy-inference", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, request: PolicyRequest) -> asyncio.Future:
        """Queue a request; the returned future (on the running loop) gets an InferenceResult or an exception."""
        loop = asyncio.get_running_loop()
        job = _Job(request, loop, loop.create_future())
        self._queue.put(job)
        self.metrics.queue_depth.set(self._queue.qsize())
        return job.future

    # ---- inference thread ---------------------------------------------------------------------------
    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        """The first job plus whatever arrives within the wait window (bounded); True when told to stop."""
        batch = [first]
        deadline = time.perf_counter() + self.batch_wait_s
        while len(batch) < self.max_batch:
            if self.peers is not None and self._queue.empty() and len(batch) >= self.peers():
                break  # every open connection is already in this batch: nobody else can join it
            remaining = deadline - time.perf_counter()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
        return batch, False

    def _warm_up(self) -> None:
        try:
            if self.warmup is not None:
                started = time.perf_counter()
                self.warmup()
                logger.info("model warmed up in %.1f s", time.perf_counter() - started)
        except BaseException as exc:  # reported by serve(), which refuses to start
            logger.exception("model warm-up failed")
            self.warmup_error = exc
        finally:
            self.warm.set()

    def _run(self) -> None:
        self._warm_up()
        stopping = self.warmup_error is not None
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch, stopping = self._collect(first)
            self.metrics.queue_depth.set(self._queue.qsize())
            live = [job for job in batch if not job.future.done()]
            try:
                act_jobs = [job for job in live if job.request.kind == "act"]
                subtask_jobs = [job for job in live if job.request.kind == "subtask"]
                if act_jobs:
                    self._run_act(act_jobs)
                if subtask_jobs:
                    self._run_subtasks(subtask_jobs)
            except Exception as exc:  # a bug here must not kill the only inference thread
                logger.exception("inference thread failed on a batch of %d", len(live))
                for job in live:
                    self._finish(job, None, exc)
        # Anything still queued at shutdown gets a clear error instead of waiting forever.
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                self._finish(job, None, RuntimeError("policy worker is shutting down"))

    def _finish(self, job: _Job, result: InferenceResult | None, error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # loop already closed: nobody is waiting any more
            job.loop.call_soon_threadsafe(_deliver, job.future, result, error)

    def _act_call(self, jobs: Sequence[_Job]) -> list[Any]:
        requests = [job.request for job in jobs]
        observations = [r.observation for r in requests]
        prompts = [r.prompt for r in requests]
        if any(r.prev_chunk is not None for r in requests):
            return self.policy.act_batch(
                observations, prompts, prev_chunks=[r.prev_chunk for r in requests], delays=[r.delay for r in requests]
            )
        return self.policy.act_batch(observations, prompts)

    def _run_act(self, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        try:
            chunks = self._act_call(jobs)
            if len(chunks) != len(jobs):
                raise RuntimeError(f"act_batch returned {len(chunks)} chunks for {len(jobs)} requests")
        except Exception as exc:
            if len(jobs) > 1:
                # Find the culprit: one bad observation must not cost the other robots their chunk.
                logger.warning("batched inference failed (%s); retrying %d requests one by one", exc, len(jobs))
                for job in jobs:
                    self._run_act([job])
                return
            self._finish(jobs[0], None, exc)
            return
        model_s = time.perf_counter() - started
        self.metrics.inference_latency.labels(kind="act").observe(model_s)
        self.metrics.batch_size.labels(kind="act").observe(len(jobs))
        for job, chunk in zip(jobs, chunks, strict=True):
            actions = np.asarray(getattr(chunk, "actions", chunk), dtype=np.float32)
            queue_s = started - job.enqueued
            self.metrics.queue_latency.observe(queue_s)
            self._finish(
                job,
                InferenceResult(actions=actions, queue_ms=queue_s * 1e3, model_ms=model_s * 1e3, batch_size=len(jobs)),
                None,
            )

    def _run_subtasks(self, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        try:
            if len(jobs) > 1 and hasattr(self.policy, "subtask_batch"):
                texts = self.policy.subtask_batch(
                    [j.request.observation for j in jobs], [j.request.prompt for j in jobs]
                )
            else:
                texts = [self.policy.subtask(jobs[0].request.observation, jobs[0].request.prompt)]
            if len(texts) != len(jobs):
                raise RuntimeError(f"subtask_batch returned {len(texts)} texts for {len(jobs)} requests")
        except Exception as exc:
            if len(jobs) > 1:
                logger.warning("batched subtask decoding failed (%s); retrying %d requests one by one", exc, len(jobs))
                for job in jobs:
                    self._run_subtasks([job])
                return
            self._finish(jobs[0], None, exc)
            return
        model_s = time.perf_counter() - started
        self.metrics.inference_latency.labels(kind="subtask").observe(model_s)
        self.metrics.batch_size.labels(kind="subtask").observe(len(jobs))
        for job, text in zip(jobs, texts, strict=True):
            queue_s = started - job.enqueued
            self.metrics.queue_latency.observe(queue_s)
            result = InferenceResult(
                subtask=str(text), queue_ms=queue_s * 1e3, model_ms=model_s * 1e3, batch_size=len(jobs)
            )
            self._finish(job, result, None)


def _plain(value: Any) -> Any:
    """Metadata as msgpack-native values (tuples -> lists, numpy -> python)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def worker_metadata(policy_metadata: Any, mapping: ObservationMapping) -> dict[str, Any]:
    """The metadata frame's content: the policy's own metadata plus the mapping's (shared with policy/fleet)."""
    return _plain(
        {
            **dict(policy_metadata),
            **mapping.metadata,
            "mapping": mapping.name,
            "request_keys": mapping.expected_keys(),
            "extensions": list(EXTENSION_KEYS),
        }
    )


def build_reply(
    mapping: ObservationMapping,
    request: PolicyRequest,
    result: InferenceResult,
    decode_ms: float,
    infer_ms: float,
    prev_total_ms: float | None,
) -> dict[str, Any]:
    """One reply frame's content (shared with the Ray Serve ingress in policy/fleet, so both speak the same wire)."""
    if request.kind == "subtask":
        reply: dict[str, Any] = {"hearth/subtask": result.subtask or ""}
    else:
        assert result.actions is not None
        reply = mapping.reply(result.actions)
    server_timing: dict[str, float] = {
        "infer_ms": infer_ms,
        "decode_ms": decode_ms,
        "queue_ms": result.queue_ms,
        "batch_size": float(result.batch_size),
    }
    if prev_total_ms is not None:
        server_timing["prev_total_ms"] = prev_total_ms
    reply["server_timing"] = server_timing
    reply["policy_timing"] = {"infer_ms": result.model_ms}
    return reply


class PolicyServer(WebSocketService):
    """Serve one Pi05Policy to any number of robots over the openpi WebSocket protocol (hearth_wire/service.py)."""

    name = "policy worker"

    def __init__(
        self,
        policy: Pi05Policy,
        host: str = "127.0.0.1",
        port: int = 8765,
        api_keys: list[str] | None = None,
        max_batch: int = 8,
        batch_wait_ms: float = 5.0,
        mapping: str = "hearth",
        *,
        default_prompt: str | None = None,
        max_image_side: int = DEFAULT_MAX_IMAGE_SIDE,
        max_message_bytes: int | None = DEFAULT_MAX_MESSAGE_BYTES,
        warmup: bool = True,
    ):
        """`warmup`: call `policy.warmup(max_batch=...)` on the inference thread before reporting healthy."""
        super().__init__(host, port, api_keys, max_message_bytes, keepalive_s=20.0)
        self.policy = policy
        self.max_image_side = max_image_side
        self.spec = PolicySpec.from_metadata(policy.metadata)
        self.mapping = get_mapping(mapping, self.spec, default_prompt=default_prompt)
        self.metrics = WorkerMetrics()
        self.batcher = InferenceBatcher(
            policy,
            max_batch,
            batch_wait_ms / 1e3,
            self.metrics,
            peers=lambda: int(self.metrics.value("hearth_policy_connections_open")),
            warmup=(lambda: policy.warmup(max_batch=max_batch)) if warmup else None,
        )
        self.metadata: dict[str, Any] = worker_metadata(policy.metadata, self.mapping)
        self._metadata_frame = packb(self.metadata)

    # ---- life cycle (the rest is WebSocketService's) ------------------------------------------------
    def _startup(self) -> None:
        self.batcher.start()

    def _shutdown(self) -> None:
        self.batcher.stop()

    async def _until_ready(self) -> None:
        await asyncio.to_thread(self.batcher.warm.wait)
        failure = self.batcher.warmup_error
        if failure is not None:
            raise RuntimeError(f"model warm-up failed: {failure}") from failure
        logger.info("serving mapping %s", self.mapping.name)

    def run_in_thread(self, timeout_s: float = 600.0) -> contextlib.AbstractContextManager[int]:
        """Serve on a background thread; yields the bound port. The generous default covers warm-up: capturing a
        large model's CUDA graphs for every shape takes a while."""
        return super().run_in_thread(timeout_s)

    # ---- HTTP side: health, metrics (auth is WebSocketService's) -------------------------------------
    def _healthz(self, connection: ServerConnection) -> Response:
        if not self.batcher.warm.is_set():
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "warming up\n")
        return connection.respond(HTTPStatus.OK, "OK\n")

    def _refused(self, connection: ServerConnection) -> None:
        self.metrics.errors.labels(reason="auth").inc()
        logger.warning(
            "refused connection with a missing or wrong API key", extra={"peer": str(connection.remote_address)}
        )

    def _route(self, connection: ServerConnection, path: str) -> Response | None:
        if path == "/metrics":
            return text_response(connection, HTTPStatus.OK, self.metrics.render(), CONTENT_TYPE)
        if not self.batcher.warm.is_set():
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "policy worker is warming up; retry shortly\n")
        return None  # proceed with the WebSocket handshake

    # ---- WebSocket side -----------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        self.metrics.connections_total.inc()
        self.metrics.connections_open.inc()
        peer = str(ws.remote_address)
        episode_id: str | None = None
        prev_total_ms: float | None = None
        try:
            await ws.send(self._metadata_frame)
            async for message in ws:
                received = time.perf_counter()
                kind = "unknown"
                try:
                    if isinstance(message, str):
                        raise PolicyInputError("expected a binary msgpack frame, got a text frame")
                    decoded_message = unpackb(message)
                    ack = control_ack(decoded_message)
                    if ack is not None:  # openpi's episode_start / episode_end: acknowledged, nothing to infer
                        await ws.send(packb(ack))
                        continue
                    request = self.mapping.parse(decoded_message, self.spec, self.max_image_side)
                    kind = request.kind
                    if request.episode_id and request.episode_id != episode_id:
                        episode_id = request.episode_id
                        logger.info(
                            "connection %s now serves episode %s", peer, episode_id, extra={"episode_id": episode_id}
                        )
                    decoded = time.perf_counter()
                    result: InferenceResult = await self.batcher.submit(request)
                    done = time.perf_counter()
                    reply = self._reply(
                        request, result, (decoded - received) * 1e3, (done - decoded) * 1e3, prev_total_ms
                    )
                    if episode_id:
                        # Echoed so a recorder can line replies up with its episode (the wire has no sessions).
                        reply[EPISODE_KEY] = episode_id
                    await ws.send(packb(reply))
                    logger.debug(
                        "%s request served in %.1f ms (queue %.1f ms, model %.1f ms, batch %d)",
                        kind,
                        (time.perf_counter() - received) * 1e3,
                        result.queue_ms,
                        result.model_ms,
                        result.batch_size,
                        extra={"episode_id": episode_id or "", "peer": peer},
                    )
                except (WireError, PolicyInputError) as exc:
                    self.metrics.errors.labels(reason="decode" if isinstance(exc, WireError) else "bad_input").inc()
                    self.metrics.requests.labels(kind=kind, outcome="error").inc()
                    message_text = cap_error(str(exc))  # never echo a whole oversized request back or into the log
                    logger.warning(
                        "bad request from %s: %s", peer, message_text, extra={"episode_id": episode_id or ""}
                    )
                    await self._send_error(ws, f"bad request: {message_text}", BAD_REQUEST_REASON)
                    return
                except ConnectionClosed:
                    raise
                except Exception:
                    self.metrics.errors.labels(reason="internal").inc()
                    self.metrics.requests.labels(kind=kind, outcome="error").inc()
                    logger.exception("inference failed for %s", peer, extra={"episode_id": episode_id or ""})
                    await self._send_error(ws, traceback.format_exc(), INTERNAL_ERROR_REASON)
                    return
                total_s = time.perf_counter() - received
                prev_total_ms = total_s * 1e3
                self.metrics.requests.labels(kind=kind, outcome="ok").inc()
                self.metrics.request_latency.labels(kind=kind).observe(total_s)
        except ConnectionClosed as exc:
            if exc.rcvd is None or exc.rcvd.code not in (1000, 1001):
                self.metrics.errors.labels(reason="disconnect").inc()
                logger.info("connection %s dropped: %s", peer, exc, extra={"episode_id": episode_id or ""})
        finally:
            self.metrics.connections_open.dec()

    def _reply(
        self,
        request: PolicyRequest,
        result: InferenceResult,
        decode_ms: float,
        infer_ms: float,
        prev_total_ms: float | None,
    ) -> dict[str, Any]:
        return build_reply(self.mapping, request, result, decode_ms, infer_ms, prev_total_ms)

    async def _send_error(self, ws: ServerConnection, text: str, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(text)
            await ws.close(1011, reason)
