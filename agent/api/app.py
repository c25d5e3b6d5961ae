"""`create_app`: the FastAPI application for operators and home automation, built from settings and runtimes.

Tests build it with injected runtimes and a temporary SQLite file; `hearth serve-api` builds the real runtimes
from the deployment config and passes them in. Opening the app marks tasks left unfinished by a previous process
as interrupted (nothing drives them any more) before anything new can start.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from agent.api.bridge import EventBridge
from agent.api.context import ApiContext
from agent.api.episodes_index import sync_all
from agent.api.errors import ERROR_RESPONSES, install_error_handlers
from agent.api.live import router as live_router
from agent.api.live_hub import LiveHub
from agent.api.live_messages import document_live_messages
from agent.api.metrics import ApiMetrics, RequestTimer
from agent.api.metrics import router as metrics_router
from agent.api.openapi_errors import document_error_responses
from agent.api.ratelimit import RateLimiter
from agent.api.registry import RuntimeRegistry
from agent.api.routers import coaching, episodes, estop, health, robots, tasks, tickets, tokens
from agent.api.webhooks import WebhookDispatcher
from agent.settings import ApiConfig, DeploymentConfig
from agent.store import Store

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
RESTART_REASON = "the API process stopped while this task was unfinished"


def _find_bus(registry: RuntimeRegistry) -> Any:
    for _robot_id, runtime in registry.items():
        bus = getattr(runtime, "bus", None)
        if bus is not None:
            return bus
    return None


def create_app(
    settings: ApiConfig | DeploymentConfig | None = None,
    runtimes: Mapping[str, Any] | RuntimeRegistry | None = None,
    *,
    bus: Any = None,
    store: Store | None = None,
    episode_roots: Mapping[str, Path | str] | None = None,
    manage_runtimes: bool = False,
    webhook_backoff_s: float = 0.5,
) -> FastAPI:
    """Build the API.

    settings: the deployment (its `api` section is used) or just an ApiConfig.
    runtimes: robot id -> RobotRuntime (already started unless manage_runtimes, then the app starts/stops them).
    bus: the EventBus the runtimes publish to (default: the first runtime's `.bus`).
    """
    if isinstance(settings, DeploymentConfig):
        config = settings.api
        if episode_roots is None and runtimes is not None:
            episode_roots = {robot_id: settings.episodes_root(robot_id) for robot_id in runtimes}
    else:
        config = settings or ApiConfig()
    registry = runtimes if isinstance(runtimes, RuntimeRegistry) else RuntimeRegistry(runtimes, episode_roots)
    store = store or Store(config.database_url)
    # On a shared database (PostgreSQL) other API processes drive other robots: only this process's are stale.
    own_robots = registry.ids() if store.shared else None
    interrupted = store.mark_unfinished_interrupted(RESTART_REASON, own_robots)
    if interrupted:
        logger.warning("tasks interrupted by a restart", extra={"task_ids": interrupted})
    store.purge_idempotency(config.idempotency_ttl_s)
    bus = bus if bus is not None else _find_bus(registry)
    webhooks = WebhookDispatcher(config.webhooks, backoff_s=webhook_backoff_s)
    ctx = ApiContext(
        config=config,
        store=store,
        registry=registry,
        webhooks=webhooks,
        task_limiter=RateLimiter(config.task_rate_limit_per_minute),
        bus=bus,
        bridge=EventBridge(bus, store, registry, webhooks) if bus is not None else None,
        hub=LiveHub(bus),
    )
    try:
        sync_all(store, registry.episode_roots())
    except Exception:  # an unreadable dataset must not keep the API (and e-stop) down
        logger.exception("episode index sync failed")

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if ctx.bridge is not None:
            ctx.bridge.start()
        ctx.hub.start()
        if manage_runtimes:
            registry.start_all()
        try:
            yield
        finally:
            if manage_runtimes:
                registry.stop_all()
            if ctx.bridge is not None:
                ctx.bridge.stop()
            ctx.hub.stop()
            ctx.webhooks.close()
            # Anything the runtimes left unfinished is interrupted now, not at the next start.
            store.mark_unfinished_interrupted(RESTART_REASON, own_robots) if manage_runtimes else None

    app = FastAPI(
        title="hearth API",
        version="1.0.0",
        summary="Operate household robots: tasks, coaching, e-stop, episodes, live stream.",
        lifespan=lifespan,
        responses={401: ERROR_RESPONSES[401], 422: ERROR_RESPONSES[422]},
    )
    app.state.ctx = ctx
    app.state.metrics = ApiMetrics(ctx)
    app.add_middleware(RequestTimer, metrics=app.state.metrics)
    install_error_handlers(app)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Location", "Retry-After", "Idempotent-Replayed"],
        )
    for module in (health, robots, tasks, coaching, estop, episodes, tokens, tickets):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(live_router, prefix=API_PREFIX)
    app.include_router(metrics_router)  # GET /metrics, where Prometheus looks by default
    document_error_responses(app)
    document_live_messages(app)
    return app
