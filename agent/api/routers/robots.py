"""Robots: list them, describe one (cameras, joints, control rate, known tasks), its live status and queue."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from agent.api.auth import Permission, require
from agent.api.context import ApiContext, get_ctx
from agent.api.schemas import RobotList, RobotOut, TaskList
from agent.runtime_status import RobotStatus
from agent.store import StoredTask

router = APIRouter(tags=["robots"])
_read = require(Permission.ROBOTS_READ)


def _robot(ctx: ApiContext, robot_id: str) -> RobotOut:
    return RobotOut(id=robot_id, status=ctx.registry.status(robot_id), description=ctx.registry.describe(robot_id))


@router.get("/robots", response_model=RobotList, summary="List robots with their status")
def list_robots(ctx: ApiContext = Depends(get_ctx), _token=Depends(_read)) -> RobotList:
    return RobotList(items=[_robot(ctx, robot_id) for robot_id in ctx.registry.ids()])


@router.get("/robots/{robot_id}", response_model=RobotOut, summary="Describe one robot")
def get_robot(robot_id: str, ctx: ApiContext = Depends(get_ctx), _token=Depends(_read)) -> RobotOut:
    return _robot(ctx, robot_id)


@router.get(
    "/robots/{robot_id}/status",
    response_model=RobotStatus,
    summary="A robot's live status (the console polls it; bulky per-tick data stays on the live stream)",
)
def get_status(robot_id: str, ctx: ApiContext = Depends(get_ctx), _token=Depends(_read)) -> RobotStatus:
    return ctx.registry.status(robot_id)


@router.get("/robots/{robot_id}/queue", response_model=TaskList, summary="A robot's active and queued tasks, in order")
def get_queue(
    robot_id: str, ctx: ApiContext = Depends(get_ctx), _token=Depends(require(Permission.TASKS_READ))
) -> TaskList:
    records = ctx.registry.get(robot_id).tasks()
    items = [StoredTask.from_record(record) for record in records if not record.state.terminal]
    return TaskList(items=items, limit=len(items), offset=0)
