"""Robots: list them, describe one (cameras, joints, control rate, known tasks), its live status and queue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from agent.api.auth import Permission, require
from agent.api.context import ApiContext, get_ctx
from agent.api.schemas import RobotList, RobotOut, TaskList, TaskOut
from agent.store.store import to_jsonable

router = APIRouter(tags=["robots"])
_read = require(Permission.ROBOTS_READ)


def robot_status(ctx: ApiContext, robot_id: str) -> dict[str, Any]:
    status = to_jsonable(dict(ctx.registry.get(robot_id).status()))
    # Bulky per-tick data stays on the live stream; the REST status is a summary.
    return {k: v for k, v in status.items() if k not in ("chunk", "actions")}


def _robot(ctx: ApiContext, robot_id: str) -> RobotOut:
    return RobotOut(id=robot_id, status=robot_status(ctx, robot_id), description=ctx.registry.describe(robot_id))


@router.get("/robots", response_model=RobotList, summary="List robots with their status")
def list_robots(ctx: ApiContext = Depends(get_ctx), _token=Depends(_read)) -> RobotList:
    return RobotList(items=[_robot(ctx, robot_id) for robot_id in ctx.registry.ids()])


@router.get("/robots/{robot_id}", response_model=RobotOut, summary="Describe one robot")
def get_robot(robot_id: str, ctx: ApiContext = Depends(get_ctx), _token=Depends(_read)) -> RobotOut:
    return _robot(ctx, robot_id)


@router.get("/robots/{robot_id}/status", response_model=dict[str, Any], summary="A robot's live status")
def get_status(robot_id: str, ctx: ApiContext = Depends(get_ctx), _token=Depends(_read)) -> dict[str, Any]:
    return robot_status(ctx, robot_id)


@router.get("/robots/{robot_id}/queue", response_model=TaskList, summary="A robot's active and queued tasks, in order")
def get_queue(
    robot_id: str, ctx: ApiContext = Depends(get_ctx), _token=Depends(require(Permission.TASKS_READ))
) -> TaskList:
    runtime = ctx.registry.get(robot_id)
    items = []
    for record in runtime.tasks():
        if record.state.terminal:
            continue
        data = record.model_dump(mode="json")
        data.setdefault("updated_at", data.get("created_at"))
        items.append(TaskOut.model_validate(data))
    return TaskList(items=items, limit=len(items), offset=0)
