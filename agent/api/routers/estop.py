"""Emergency stop: one robot or all of them, for every role except viewer; reset needs operator or admin."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends

from agent.api.auth import Permission, require
from agent.api.context import ApiContext, get_ctx
from agent.api.schemas import EstopOut, ReasonIn
from agent.store import TokenInfo

logger = logging.getLogger(__name__)
router = APIRouter(tags=["e-stop"])


def _reason(body: ReasonIn | None, token: TokenInfo) -> str:
    reason = body.reason if body and body.reason.strip() else "operator"
    return f"{reason} (api token {token.name!r})"


@router.post("/robots/{robot_id}/estop", response_model=EstopOut, summary="E-stop one robot (latches until reset)")
def estop_robot(
    robot_id: str,
    body: ReasonIn | None = None,
    ctx: ApiContext = Depends(get_ctx),
    token: TokenInfo = Depends(require(Permission.ESTOP)),
) -> EstopOut:
    reason = _reason(body, token)
    ctx.registry.get(robot_id).estop(reason)
    logger.warning("e-stop", extra={"robot_id": robot_id, "reason": reason})
    return EstopOut(robot_ids=[robot_id], estopped=True, reason=reason)


@router.post("/estop", response_model=EstopOut, summary="E-stop every robot")
def estop_all(
    body: ReasonIn | None = None,
    ctx: ApiContext = Depends(get_ctx),
    token: TokenInfo = Depends(require(Permission.ESTOP)),
) -> EstopOut:
    reason = _reason(body, token)
    stopped = []
    for robot_id, runtime in ctx.registry.items():
        try:
            runtime.estop(reason)
            stopped.append(robot_id)
        except Exception:  # one broken robot must not keep the others moving
            logger.exception("e-stop failed", extra={"robot_id": robot_id})
    logger.warning("e-stop all", extra={"robot_ids": stopped, "reason": reason})
    return EstopOut(robot_ids=stopped, estopped=True, reason=reason)


@router.post("/robots/{robot_id}/estop/reset", response_model=EstopOut, summary="Release a robot's e-stop")
def reset_estop(
    robot_id: str, ctx: ApiContext = Depends(get_ctx), token: TokenInfo = Depends(require(Permission.ESTOP_RESET))
) -> EstopOut:
    ctx.registry.get(robot_id).reset_estop()
    logger.warning("e-stop reset", extra={"robot_id": robot_id, "token": token.name})
    return EstopOut(robot_ids=[robot_id], estopped=False)
