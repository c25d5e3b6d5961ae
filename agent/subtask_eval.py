"""System 1 in isolation: per subtask type, success from the scripted expert's state with the correct text.

Why: a whole-task success rate says *that* a policy fails, not *where*. This mode (``hearth eval --per-subtask``)
replays the scripted expert on a held-out seed up to the first tick of each subtask, then hands the robot to
System 1 with the expert's subtask text (System 2 is not asked) for at most ``slack`` times the ticks the expert
itself needed for that subtask. Each subtask type has its own check:

- ``go to the X``: the base stands within ``GOTO_XY`` m and ``GOTO_YAW`` rad of X's stand-off, nearly stopped;
- ``pick up the Y``: Y is held and the arm is back near its tucked posture (ready to drive);
- ``place the Y on Z``: Y rests on/in Z and the gripper has let go.

The check ends the attempt as soon as it holds. Cameras are rendered only when the policy is asked for a chunk
(every ``execute_steps`` ticks), which keeps this CPU-fast.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

GOTO_XY, GOTO_YAW = 0.10, 0.10  # m, rad from the stand-off: close enough that the line-up in pick can finish it
ARM_READY = 0.15  # rad: largest joint error to the tucked posture after a pick
# m above the object's top: 4 cm into a descent (a line-up hovers the hand 9 cm or more above the object's top)
DESCENT_ABOVE = 0.05


@dataclass
class SubtaskResult:
    task: str
    seed: int
    index: int  # which subtask of the task (0-based)
    subtask: str
    kind: str  # go_to | pick | place
    success: bool
    ticks: int
    expert_ticks: int
    wall_s: float
    # where it went wrong, in robot units: go to: final "xy_error" (m) and "yaw_error" (rad) to the stand-off;
    # pick: "lineup_error" (m), the base's distance from the object's reach pose when the gripper first closed
    # (absent when it never closed), and "descent_error" (m), the same distance when the hand first came down to
    # DESCENT_ABOVE over the object's top (absent when it never did): a hand that starts down before the base
    # has lined up closes beside the object; empty for place
    detail: dict[str, float] = field(default_factory=dict)


def subtask_kind(text: str) -> str:
    if text.startswith("go to"):
        return "go_to"
    if text.startswith("pick"):
        return "pick"
    if text.startswith("place"):
        return "place"
    return "other"


def expert_segments(robot, task: str, seed: int, max_ticks: int = 2000) -> list[tuple[str, int, int]]:
    """(subtask, first tick, tick count) of each subtask of the noise-free expert on this seed."""
    from robots.sim.expert import ScriptedExpert

    robot.set_task(task)
    robot.reset(seed)
    expert = ScriptedExpert(robot, noise=0.0, seed=seed)
    segments: list[list] = []
    for tick in range(max_ticks):
        action, label = expert.act()
        if expert.done:
            break
        if not segments or segments[-1][0] != label:
            segments.append([label, tick, 0])
        segments[-1][2] += 1
        robot.act(action)
    return [(label, start, count) for label, start, count in segments]


def achieved(robot, task_move, subtask: str) -> bool:
    """Whether ``subtask`` (of the move ``task_move``) is done in the robot's current state."""
    from robots.sim.expert import HOME_ARM
    from robots.sim.kitchen import standoff_pose, wrap_angle

    kind = subtask_kind(subtask)
    if kind == "go_to":
        furniture = subtask.removeprefix("go to the ").strip()
        x, y, yaw = robot.base_pose()
        sx, sy, syaw = standoff_pose(furniture)
        speed = float(np.linalg.norm(robot.data.qvel[robot._base_dof[:2]]))
        return math.hypot(x - sx, y - sy) < GOTO_XY and abs(wrap_angle(yaw - syaw)) < GOTO_YAW and speed < 0.1
    if kind == "pick":
        arm = robot.state()[:7]
        return robot.held_object == task_move.obj and float(np.max(np.abs(arm - HOME_ARM))) < ARM_READY
    if kind == "place":
        return robot.object_on(task_move.obj, task_move.target)
    return False


def _move_of(robot, index: int):
    """The task move a subtask belongs to (4 subtasks per move, in order)."""
    return robot.spec.moves[min(index // 4, len(robot.spec.moves) - 1)]


def run_subtask(policy, robot, task: str, seed: int, index: int, segments, slack: float, execute_steps: int):
    """Replay the expert to subtask ``index``'s first tick, then let System 1 try it."""
    from robots.sim.expert import ScriptedExpert
    from robots.sim.kitchen import GRIP_CLOSE

    subtask, start, expert_ticks = segments[index]
    robot.set_task(task)
    robot.reset(seed)
    expert = ScriptedExpert(robot, noise=0.0, seed=seed)
    for _ in range(start):
        action, _label = expert.act()
        robot.act(action)
    move = _move_of(robot, index)
    budget = max(int(slack * expert_ticks), execute_steps)
    started = time.monotonic()
    ticks = 0
    success = achieved(robot, move, subtask)
    kind = subtask_kind(subtask)
    detail: dict[str, float] = {}
    while ticks < budget and not success:
        chunk = policy.act(robot.observe(), subtask)
        for action in np.asarray(chunk.actions)[:execute_steps]:
            if kind == "pick" and "lineup_error" not in detail and action[7] >= GRIP_CLOSE:
                detail["lineup_error"] = round(lineup_error(robot, move.obj), 4)
            robot.act(action)
            if kind == "pick" and "descent_error" not in detail and hand_height_over(robot, move.obj) < DESCENT_ABOVE:
                detail["descent_error"] = round(lineup_error(robot, move.obj), 4)
            ticks += 1
            success = achieved(robot, move, subtask)
            if success or ticks >= budget:
                break
    if kind == "go_to":
        detail.update(standoff_error(robot, subtask.removeprefix("go to the ").strip()))
    return SubtaskResult(
        task,
        seed,
        index,
        subtask,
        kind,
        bool(success),
        ticks,
        expert_ticks,
        time.monotonic() - started,
        detail,
    )


def standoff_error(robot, furniture: str) -> dict[str, float]:
    """How far the base stands from ``furniture``'s stand-off: xy (m) and heading (rad, signed)."""
    from robots.sim.kitchen import standoff_pose, wrap_angle

    x, y, yaw = robot.base_pose()
    sx, sy, syaw = standoff_pose(furniture)
    return {"xy_error": round(math.hypot(x - sx, y - sy), 4), "yaw_error": round(float(wrap_angle(yaw - syaw)), 4)}


def hand_height_over(robot, obj: str) -> float:
    """Height (m) of the point between the fingertips above ``obj``'s top."""
    return float(robot.grip_pose()[0][2] - (robot.object_position(obj)[2] + robot.object_extent[obj][1]))


def lineup_error(robot, obj: str) -> float:
    """Distance (m) of the base from the pose that puts ``obj`` straight ahead at grasp reach (the expert's
    line-up target at the furniture the object stands on)."""
    from robots.sim.expert import furniture_near
    from robots.sim.kitchen import reach_pose

    p = robot.object_position(obj)
    x, y, _yaw = robot.base_pose()
    gx, gy, _ = reach_pose(furniture_near(p), p[0], p[1])
    return math.hypot(x - gx, y - gy)


def evaluate_subtasks(
    policy,
    tasks: Sequence[str],
    episodes: int,
    seed_offset: int = 1000,
    slack: float = 3.0,
    execute_steps: int = 25,
    camera_size: int = 96,
    on_result: Callable[[SubtaskResult], None] | None = None,
    source: str = "the policy",
) -> list[SubtaskResult]:
    """Every subtask of every (task, held-out seed) pair, each from the expert's state at its start.

    Refuses (``PolicyMismatchError``) a policy trained on another robot interface before anything moves.
    """
    from agent.compat import check_policy_fits_robot
    from robots.registry import make_robot

    options: dict[str, Any] = {"camera_size": camera_size}
    metadata = getattr(policy, "metadata", {}) or {}
    if metadata.get("camera_names"):
        options["cameras"] = tuple(metadata["camera_names"])
    robot = make_robot("sim-kitchen", task=tasks[0], seed=seed_offset, **options)
    results: list[SubtaskResult] = []
    try:
        if metadata:
            check_policy_fits_robot(metadata, robot.describe(), source)
        for task in tasks:
            for seed in range(seed_offset, seed_offset + episodes):
                segments = expert_segments(robot, task, seed)
                for index in range(len(segments)):
                    result = run_subtask(policy, robot, task, seed, index, segments, slack, execute_steps)
                    results.append(result)
                    if on_result is not None:
                        on_result(result)
    finally:
        robot.close()
    return results


def summarize_subtasks(results: Sequence[SubtaskResult]) -> dict[str, dict[str, float]]:
    """Success rate and count per subtask kind and per exact subtask text."""
    table: dict[str, dict[str, float]] = {}
    for key_of in (lambda r: r.kind, lambda r: r.subtask):
        groups: dict[str, list[SubtaskResult]] = {}
        for r in results:
            groups.setdefault(key_of(r), []).append(r)
        for key, items in sorted(groups.items()):
            table[key] = {"n": len(items), "success": sum(r.success for r in items) / len(items)}
    return table


def subtask_markdown(summary: dict[str, dict[str, float]]) -> str:
    lines = ["| subtask | attempts | System-1 success |", "| --- | ---: | ---: |"]
    lines += [f"| {key} | {int(v['n'])} | {100 * v['success']:.0f} % |" for key, v in summary.items()]
    return "\n".join(lines)


def write_subtask_report(results: Sequence[SubtaskResult], path: Path, extra: dict[str, Any] | None = None) -> dict:
    summary = summarize_subtasks(results)
    report = {
        **(extra or {}),
        "summary": summary,
        "results": [asdict(r) for r in results],
        "table": subtask_markdown(summary),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    return report
