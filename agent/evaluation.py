"""Closed-loop evaluation of a checkpoint: the full hierarchy (System 2 subtask, System 1 chunks) in the sim.

Protocol (what `hearth eval` measures, stated so the numbers can be judged):
- Seeds are held out: episode i of a task uses seed `seed_offset + i` (collection uses seeds from 0, so the
  default offset 1000 never overlaps the training data).
- Execution is synchronous chunking, as in the π₀.₅ paper's evaluations: at each chunk boundary System 2 decodes
  the subtask from the current observation and the task text, then System 1 produces a chunk for that subtask
  and the first `execute_steps` actions run on the robot. If System 2 answers "done" the episode stops there.
- Success is the sim task's own success check; progress is the task's fraction of achieved subtasks (0..1),
  both read from the robot at the end of the episode.
- Subtask accuracy: at each System-2 query the prediction is compared (case and whitespace normalised) with
  the reference label of the *current sim state*: the first unfinished move of the task, and within it
  "go to {source}" until the base stands at that furniture (stopped in its work zone: at its edge, facing it,
  torso set; the pick's line-up moves the base along it), "pick up {object}" until it is held, "go to {target}" until the base stands at the target, then
  "place ...". These are the scripted expert's own subtask texts and decision points, computed from state,
  so the reference stays meaningful when the policy's trajectory differs from any demonstration (an expert
  run in lockstep would drift to its own timeline instead). Known difference: the expert keeps "pick up"
  while it lifts the object and returns the arm, the state reference switches to "go to" as soon as the
  object is held; a boundary query can therefore disagree for about a second.
- Every episode is recorded (LeRobotDataset v3.0 via EpisodeRecorder) with the predicted subtasks (source
  "policy") and a `reference_subtask` event whenever the reference label changes, for review.
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


def normalize_subtask(text: str) -> str:
    """Case- and whitespace-insensitive form used for subtask accuracy (punctuation at the ends dropped)."""
    return " ".join(text.lower().strip().strip(".!;").split())


@dataclass
class EvalSettings:
    episodes: int = 10
    seed_offset: int = 1000
    max_steps: int = 600
    execute_steps: int = 25
    camera_size: int | None = None
    record_dir: Path | None = None
    robot_name: str = "sim-kitchen"
    robot_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class EpisodeResult:
    task: str
    seed: int
    success: bool
    progress: float
    subtask_queries: int
    subtask_matches: int
    steps: int
    chunks: int
    ended_by: str
    wall_s: float
    predicted_subtasks: list[str] = field(default_factory=list)

    @property
    def subtask_accuracy(self) -> float:
        return self.subtask_matches / self.subtask_queries if self.subtask_queries else float("nan")


@dataclass
class TaskSummary:
    task: str
    episodes: int
    success_rate: float
    mean_progress: float
    subtask_accuracy: float
    mean_steps: float


def summarize(results: Sequence[EpisodeResult]) -> list[TaskSummary]:
    by_task: dict[str, list[EpisodeResult]] = {}
    for result in results:
        by_task.setdefault(result.task, []).append(result)
    summaries = []
    for task, items in by_task.items():
        queries = sum(r.subtask_queries for r in items)
        summaries.append(
            TaskSummary(
                task=task,
                episodes=len(items),
                success_rate=sum(r.success for r in items) / len(items),
                mean_progress=float(np.mean([r.progress for r in items])),
                subtask_accuracy=(sum(r.subtask_matches for r in items) / queries) if queries else float("nan"),
                mean_steps=float(np.mean([r.steps for r in items])),
            )
        )
    return summaries


def overall(results: Sequence[EpisodeResult]) -> TaskSummary:
    queries = sum(r.subtask_queries for r in results)
    return TaskSummary(
        task="all",
        episodes=len(results),
        success_rate=sum(r.success for r in results) / max(1, len(results)),
        mean_progress=float(np.mean([r.progress for r in results])) if results else 0.0,
        subtask_accuracy=(sum(r.subtask_matches for r in results) / queries) if queries else float("nan"),
        mean_steps=float(np.mean([r.steps for r in results])) if results else 0.0,
    )


def markdown_table(summaries: Sequence[TaskSummary]) -> str:
    def pct(x: float) -> str:
        return "n/a" if math.isnan(x) else f"{100 * x:.0f} %"

    lines = [
        "| task | episodes | success | task progress | subtask accuracy | mean steps |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in summaries:
        lines.append(
            f"| {s.task} | {s.episodes} | {pct(s.success_rate)} | {pct(s.mean_progress)} | "
            f"{pct(s.subtask_accuracy)} | {s.mean_steps:.0f} |"
        )
    return "\n".join(lines)


class _NullRecorder:
    def start(self, task: str) -> int:
        return -1

    def record(self, *args, **kwargs) -> None:
        pass

    def subtask(self, *args, **kwargs) -> None:
        pass

    def event(self, *args, **kwargs) -> None:
        pass

    def finish(self, *args, **kwargs) -> None:
        return None

    def close(self) -> None:
        pass


class SubtaskReference:
    """The subtask the task needs next from the robot's current state (see module docstring), or "done".

    Nearly stateless: the only memories are "this object's carry has begun" (held and the arm tucked once), so
    arm sway while driving with the object does not flip the reference back to "pick up", and "the base has
    stopped at this furniture" (until it leaves its work zone), so the line-up does not flip it back to "go to".
    """

    def __init__(self, robot):
        self.robot = robot
        self._carrying: set[int] = set()
        self._arrived: set[str] = set()

    def __call__(self) -> str:
        from robots.sim.expert import HOME_ARM, TORSO_FOR
        from robots.sim.kitchen import in_work_zone
        from robots.sim.tasks import FURNITURE_OF

        robot = self.robot
        state = robot.state()
        arm_home = float(np.max(np.abs(state[:7] - HOME_ARM))) < 0.05

        base_speed = float(np.linalg.norm(robot.data.qvel[robot._base_dof[:2]]))

        def at(furniture: str) -> bool:
            """Arrived: in the furniture's work zone with the torso set, having stopped there once (the line-up
            moves the base again without leaving)."""
            if not (in_work_zone(robot.base_pose(), furniture) and abs(float(state[8]) - TORSO_FOR[furniture]) < 0.01):
                self._arrived.discard(furniture)
                return False
            if base_speed < 0.05:
                self._arrived.add(furniture)
            return furniture in self._arrived

        previous_place = None
        for index, move in enumerate(robot.spec.moves):
            go_src, pick, go_dst, place = move.subtasks()
            if robot.move_done(index):
                self._carrying.discard(index)
                previous_place = place
                continue
            if previous_place is not None and not arm_home:
                return previous_place  # the arm is still retracting from the last place
            if robot.held_object != move.obj:
                self._carrying.discard(index)
                return pick if at(FURNITURE_OF[move.source]) else go_src
            if at(FURNITURE_OF[move.target]):
                return place
            if arm_home:
                self._carrying.add(index)
            return go_dst if index in self._carrying else pick  # lifting and tucking the arm belong to the pick
        if previous_place is not None and not arm_home:
            return previous_place
        return "done"


def run_episode(policy, robot, task: str, seed: int, settings: EvalSettings, recorder) -> EpisodeResult:
    """One closed-loop episode: S2 at each chunk boundary, S1 chunk, `execute_steps` actions, until an end."""
    started = time.monotonic()
    robot.set_task(task)
    obs = robot.reset(seed=seed)
    recorder.start(task)
    steps = chunks = queries = matches = 0
    predicted_log: list[str] = []
    reference = None
    reference_of = None
    ended_by = "step-limit"
    current_subtask = None

    def track_reference() -> str:
        nonlocal reference
        label = reference_of()
        if label != reference:
            recorder.event("reference_subtask", label)
            reference = label
        return label

    reference_of = SubtaskReference(robot)
    track_reference()
    recording = not isinstance(recorder, _NullRecorder)
    while steps < settings.max_steps:
        if robot.task_success():
            ended_by = "success"
            break
        predicted = policy.subtask(obs, task)
        queries += 1
        matches += int(normalize_subtask(predicted) == normalize_subtask(reference))
        predicted_log.append(predicted)
        if normalize_subtask(predicted) == "done":
            ended_by = "system2-done"
            break
        prompt = predicted.strip()
        if not prompt:  # System 2 produced nothing usable: System 1 gets the task text (openpi's flat prompt)
            recorder.event("system2_empty", "System 2 returned an empty subtask; System 1 prompted with the task")
            prompt = task
        if prompt != current_subtask:
            recorder.subtask(prompt, "policy")
            current_subtask = prompt
        chunk = policy.act(obs, prompt)
        actions = np.asarray(chunk.actions)
        for index in range(min(settings.execute_steps, actions.shape[0])):
            recorder.record(obs, actions[index], chunks, index)
            robot.act(actions[index])
            if recording:
                obs = robot.observe()
            steps += 1
            track_reference()
            if steps >= settings.max_steps or robot.task_success():
                break
        if not recording:  # render only what the policy sees: the frame it is asked about next
            obs = robot.observe()
        chunks += 1
    success = bool(robot.task_success())
    if success:
        ended_by = "success"
    progress = robot.task_progress()
    recorder.finish("succeeded" if success else "failed", success=success)
    return EpisodeResult(
        task=task,
        seed=seed,
        success=success,
        progress=float(progress if progress is not None else float(success)),
        subtask_queries=queries,
        subtask_matches=matches,
        steps=steps,
        chunks=chunks,
        ended_by=ended_by,
        wall_s=time.monotonic() - started,
        predicted_subtasks=predicted_log,
    )


class BlindPolicy:
    """Wraps a policy so that every camera image it sees is black: the ablation that shows a policy needs its
    cameras (`hearth eval --blank-images`). State and text are unchanged."""

    def __init__(self, policy) -> None:
        self.policy = policy
        self.metadata = getattr(policy, "metadata", {})

    def _blank(self, obs):
        return obs.model_copy(update={"images": {name: np.zeros_like(image) for name, image in obs.images.items()}})

    def subtask(self, obs, task: str) -> str:
        return self.policy.subtask(self._blank(obs), task)

    def act(self, obs, prompt: str, **options):
        """The wrapped policy's chunk for black images; ``options`` (noise, RTC's prev_chunk/delay) pass through."""
        return self.policy.act(self._blank(obs), prompt, **options)


def plan_jobs(tasks: Sequence[str], episodes: int, seed_offset: int) -> list[tuple[str, int]]:
    """(task, seed) pairs: episode i of every task uses seed `seed_offset + i` (held out from collection)."""
    return [(task, seed_offset + i) for task in tasks for i in range(episodes)]


def robot_options(policy, settings: EvalSettings) -> dict[str, Any]:
    options = dict(settings.robot_options)
    if settings.camera_size:
        options.setdefault("camera_size", int(settings.camera_size))
    metadata = getattr(policy, "metadata", {}) or {}
    if metadata.get("camera_names"):
        options.setdefault("cameras", tuple(metadata["camera_names"]))
    return options


def evaluate(
    policy,
    jobs: Sequence[tuple[str, int]],
    settings: EvalSettings,
    on_episode: Callable[[EpisodeResult], None] | None = None,
    source: str = "the policy",
) -> list[EpisodeResult]:
    """Run each (task, seed) job with `policy` (a Pi05Policy or anything with `subtask(obs, task)` and
    `act(obs, prompt)`) in one simulator, recording episodes when `settings.record_dir` is set.

    A policy whose metadata does not fit the robot (agent/compat.py) raises PolicyMismatchError before anything
    moves or is recorded; `source` names the policy in that message (e.g. "checkpoint runs/x/checkpoint").
    """
    from agent.compat import check_policy_fits_robot
    from robots.registry import make_robot

    results: list[EpisodeResult] = []
    if not jobs:
        return results
    robot = make_robot(settings.robot_name, task=jobs[0][0], seed=jobs[0][1], **robot_options(policy, settings))
    try:
        metadata = getattr(policy, "metadata", None)
        if metadata is not None:
            check_policy_fits_robot(metadata, robot.describe(), source)
        recorder = _make_recorder(settings.record_dir, robot)
        try:
            for task, seed in jobs:
                result = run_episode(policy, robot, task, seed, settings, recorder)
                results.append(result)
                logger.info(
                    "eval episode", extra={k: v for k, v in asdict(result).items() if k != "predicted_subtasks"}
                )
                if on_episode is not None:
                    on_episode(result)
        finally:
            recorder.close()
    finally:
        robot.close()
    return results


def _make_recorder(record_dir: Path | None, robot):
    if record_dir is None:
        return _NullRecorder()
    from agent.recorder import EpisodeRecorder

    return EpisodeRecorder(Path(record_dir), robot.describe())


def write_report(results: Sequence[EpisodeResult], path: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    summaries = summarize(results)
    report = {
        **(extra or {}),
        "overall": asdict(overall(results)),
        "tasks": [asdict(s) for s in summaries],
        "episodes": [{**asdict(r), "subtask_accuracy": r.subtask_accuracy} for r in results],
        "table": markdown_table([*summaries, overall(results)]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=float))
    return report
