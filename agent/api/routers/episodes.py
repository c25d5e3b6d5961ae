"""Recorded episodes: list with filters, metadata, subtask/coaching timeline, a camera's video, per-frame data
for plots, a Rerun export, an operator's outcome label, delete."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from agent.api.auth import Permission, require
from agent.api.context import ApiContext, get_ctx
from agent.api.episode_data import EpisodeDataUnavailable, export_rerun_file, read_episode_data
from agent.api.episodes_index import open_reader
from agent.api.errors import ApiError, not_found
from agent.api.schemas import EpisodeData, EpisodeLabel
from agent.store import NotFound, StoredEpisode
from agent.store.store import to_jsonable

logger = logging.getLogger(__name__)
router = APIRouter(tags=["episodes"])
EpisodeIndex = Annotated[int, PathParam(ge=0, le=2**31 - 1)]
_read = require(Permission.EPISODES_READ)


class EpisodeList(BaseModel):
    items: list[StoredEpisode]
    limit: int
    offset: int


class Timeline(BaseModel):
    robot_id: str
    episode_index: int
    task: str | None = None
    subtasks: list[dict[str, Any]]
    events: list[dict[str, Any]]


def _episode(ctx: ApiContext, robot_id: str, episode_index: int) -> StoredEpisode:
    try:
        return ctx.store.get_episode(robot_id, episode_index)
    except NotFound:
        raise not_found("episode", f"{robot_id}/{episode_index}") from None


def _reader_info(episode: StoredEpisode) -> tuple[Any, Any]:
    try:
        reader = open_reader(Path(episode.root))
    except Exception as exc:
        logger.warning("episode dataset unreadable", extra={"root": episode.root}, exc_info=True)
        raise ApiError(409, "episode_unreadable", f"the dataset at {episode.root} cannot be read: {exc}") from exc
    for info in reader.episodes:
        if int(getattr(info, "index", getattr(info, "episode_index", -1))) == episode.episode_index:
            return reader, info
    raise ApiError(409, "episode_unreadable", f"episode {episode.episode_index} is indexed but not in {episode.root}")


@router.get("/episodes", response_model=EpisodeList, summary="List recorded episodes, newest first")
def list_episodes(
    robot_id: str | None = Query(default=None, max_length=128),
    task: str | None = Query(default=None, max_length=500, description="Substring of the task text."),
    outcome: str | None = Query(default=None, max_length=64),
    success: bool | None = Query(default=None),
    since: float | None = Query(default=None, ge=0, le=1e11, description="Recorded at or after (unix seconds)."),
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=1_000_000),
    ctx: ApiContext = Depends(get_ctx),
    _token=Depends(_read),
) -> EpisodeList:
    items = ctx.store.list_episodes(
        robot_id=robot_id, task=task, outcome=outcome, success=success, since=since, limit=limit, offset=offset
    )
    return EpisodeList(items=items, limit=limit, offset=offset)


@router.get("/episodes/{robot_id}/{episode_index}", response_model=StoredEpisode, summary="One episode's metadata")
def get_episode(
    robot_id: str, episode_index: EpisodeIndex, ctx: ApiContext = Depends(get_ctx), _token=Depends(_read)
) -> StoredEpisode:
    return _episode(ctx, robot_id, episode_index)


@router.get(
    "/episodes/{robot_id}/{episode_index}/timeline",
    response_model=Timeline,
    summary="Subtasks (with source: policy/coach/api) and events (coaching, e-stop, pause) of an episode",
)
def get_timeline(
    robot_id: str, episode_index: EpisodeIndex, ctx: ApiContext = Depends(get_ctx), _token=Depends(_read)
) -> Timeline:
    episode = _episode(ctx, robot_id, episode_index)
    _reader, info = _reader_info(episode)
    return Timeline(
        robot_id=robot_id,
        episode_index=episode_index,
        task=episode.task,
        subtasks=to_jsonable(list(getattr(info, "subtasks", []) or [])),
        events=to_jsonable(list(getattr(info, "events", []) or [])),
    )


@router.get(
    "/episodes/{robot_id}/{episode_index}/video/{camera}",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}, "description": "The camera's MP4 video"}},
    summary="Download one camera's video of an episode",
)
def get_video(
    robot_id: str, episode_index: EpisodeIndex, camera: str, ctx: ApiContext = Depends(get_ctx), _token=Depends(_read)
) -> FileResponse:
    episode = _episode(ctx, robot_id, episode_index)
    reader, _info = _reader_info(episode)
    try:
        path = Path(reader.video_path(episode_index, camera))
    except (KeyError, ValueError, FileNotFoundError):
        raise not_found("camera", camera) from None
    if not path.is_file():
        raise not_found("camera", camera)
    return FileResponse(path, media_type="video/mp4", filename=f"{robot_id}-episode{episode_index}-{camera}.mp4")


@router.get(
    "/episodes/{robot_id}/{episode_index}/data",
    response_model=EpisodeData,
    summary="Per-frame timestamps, state and executed actions of an episode (for plots), evenly decimated",
)
def get_data(
    robot_id: str,
    episode_index: EpisodeIndex,
    max_points: int = Query(default=2000, ge=2, le=100_000),
    ctx: ApiContext = Depends(get_ctx),
    _token=Depends(_read),
) -> EpisodeData:
    episode = _episode(ctx, robot_id, episode_index)
    try:
        data = read_episode_data(Path(episode.root), episode_index, max_points)
    except EpisodeDataUnavailable as exc:
        raise ApiError(409, "episode_unreadable", str(exc)) from exc
    return EpisodeData(robot_id=robot_id, episode_index=episode_index, **data)


@router.get(
    "/episodes/{robot_id}/{episode_index}/rerun",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "A Rerun .rrd recording"}},
    summary="Export an episode to Rerun (.rrd: cameras, state, actions, subtask timeline, events)",
)
def get_rerun(
    robot_id: str, episode_index: EpisodeIndex, ctx: ApiContext = Depends(get_ctx), _token=Depends(_read)
) -> FileResponse:
    episode = _episode(ctx, robot_id, episode_index)
    _reader_info(episode)  # 409 when the dataset cannot be read
    try:
        path = export_rerun_file(Path(episode.root), episode_index)
    except EpisodeDataUnavailable as exc:
        raise ApiError(409, "episode_unreadable", str(exc)) from exc
    except RuntimeError as exc:  # rerun-sdk missing (RerunUnavailable)
        raise ApiError(409, "rerun_unavailable", str(exc)) from exc
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"{robot_id}-episode{episode_index}.rrd",
        background=BackgroundTask(shutil.rmtree, path.parent, ignore_errors=True),
    )


@router.post(
    "/episodes/{robot_id}/{episode_index}/label",
    response_model=StoredEpisode,
    summary="Set or correct an episode's outcome label (operator review)",
)
def label_episode(
    robot_id: str,
    episode_index: EpisodeIndex,
    body: EpisodeLabel,
    ctx: ApiContext = Depends(get_ctx),
    token=Depends(require(Permission.EPISODES_LABEL)),
) -> StoredEpisode:
    episode = _episode(ctx, robot_id, episode_index)
    outcome = " ".join(body.outcome.split())
    if not outcome:
        raise ApiError(422, "outcome_empty", "outcome must contain words")
    logger.info(
        "episode relabeled",
        extra={"robot_id": robot_id, "episode_index": episode_index, "outcome": outcome, "token": token.name},
    )
    return ctx.store.save_episode(episode.model_copy(update={"outcome": outcome, "success": body.success}))


@router.delete("/episodes/{robot_id}/{episode_index}", response_model=StoredEpisode, summary="Delete an episode")
def delete_episode(
    robot_id: str,
    episode_index: EpisodeIndex,
    ctx: ApiContext = Depends(get_ctx),
    _token=Depends(require(Permission.EPISODES_DELETE)),
) -> StoredEpisode:
    try:
        return ctx.store.delete_episode(robot_id, episode_index)
    except NotFound:
        raise not_found("episode", f"{robot_id}/{episode_index}") from None
