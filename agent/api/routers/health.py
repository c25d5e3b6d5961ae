"""Liveness and readiness, without a token: load balancers and Home Assistant poll it.

Without a token it shows counts only: a webhook's URL is itself a credential (Home Assistant webhook ids are
unauthenticated triggers), so endpoints appear by position with their delivery counters, never by URL.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from agent.api.context import ApiContext, get_ctx
from agent.api.schemas import Health

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="Is the API up, is the database reachable, are robots running")
def health(ctx: ApiContext = Depends(get_ctx)) -> JSONResponse:
    database = "ok"
    try:
        with ctx.store.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        logger.warning("database health check failed", exc_info=True)
        database = f"error: {type(exc).__name__}"
    robots = {}
    for robot_id in ctx.registry.ids():
        try:
            status = ctx.registry.status(robot_id)
            robots[robot_id] = {"ok": True, "estopped": status.estopped, "running": status.running}
        except Exception as exc:
            robots[robot_id] = {"ok": False, "error": type(exc).__name__}
    body = Health(
        status="ok" if database == "ok" else "degraded",
        database=database,
        robots=robots,
        webhooks=[_counters(entry) for entry in ctx.webhooks.stats()],
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if database == "ok" else 503)


def _counters(entry: dict[str, object]) -> dict[str, object]:
    """A webhook's delivery counters without its URL."""
    return {key: value for key, value in entry.items() if key in WEBHOOK_COUNTERS}


WEBHOOK_COUNTERS = ("delivered", "failed", "queued")
