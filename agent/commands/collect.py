"""`hearth collect`: scripted-expert demonstrations from W simulator processes, merged into one LeRobotDataset.

Each episode is a job (seed, task): seed = --seed + job number, tasks cycle through --task. Workers write their own
temporary datasets under OUT/.hearth/collect/worker-<i> (a MuJoCo sim per process, no shared writer); when they
finish, the episodes are merged into OUT in job order, so the result does not depend on W or on timing. The job's
seed is stored with every episode, which makes the command resumable: rerunning it skips jobs already in OUT or in
a worker dataset, and an episode a crash interrupted is simply collected again.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import typer

logger = logging.getLogger(__name__)

COLLECT_DIR = ".hearth/collect"
SEED_KEY = "collect_seed"


@dataclass(frozen=True)
class Job:
    number: int
    seed: int
    task: str


@dataclass(frozen=True)
class WorkerOptions:
    robot: str
    camera_size: int
    cameras: tuple[str, ...]
    noise: float
    max_steps: int
    mid_task_every: int = 0  # every N-th episode starts at its first object's furniture (0 = never)

    def starts_mid_task(self, job: Job) -> bool:
        return self.mid_task_every > 0 and job.number % self.mid_task_every == self.mid_task_every - 1


def plan_jobs(tasks: list[str], episodes: int, seed: int) -> list[Job]:
    return [Job(number=j, seed=seed + j, task=tasks[j % len(tasks)]) for j in range(episodes)]


def _done_seeds(root: Path) -> set[int]:
    """Seeds of the finished (not crash-recovered) episodes of a dataset, if it exists."""
    if not (root / "meta" / "info.json").exists():
        return set()
    from policy.data.reader import LeRobotDatasetReader
    from policy.data.writer import OUTCOME_RECOVERED

    seeds = set()
    for info in LeRobotDatasetReader(root).episodes:
        if SEED_KEY in info.metadata and not (info.recovered and info.outcome == OUTCOME_RECOVERED):
            seeds.add(int(info.metadata[SEED_KEY]))
    return seeds


def run_worker(
    worker_id: int, root: str, jobs: list[Job], options: WorkerOptions, progress, parent_pid: int | None = None
) -> None:
    """One collection process: its own simulator and its own dataset at `root`. Reports to `progress` (a queue).

    It dies with `parent_pid` (agent/child_lifetime.py), so a `kill -9` of `hearth collect` leaves no worker
    writing behind it and the rerun can open the worker datasets again."""
    if parent_pid is not None:
        from agent.child_lifetime import die_with_parent

        die_with_parent(parent_pid)
    import numpy as np

    from agent.logging_setup import configure_logging
    from policy.data.writer import LeRobotDatasetWriter
    from robots.registry import make_robot
    from robots.sim.expert import ScriptedExpert, start_near
    from robots.sim.tasks import FURNITURE_OF

    configure_logging("WARNING", False)
    try:
        robot = make_robot(
            options.robot,
            task=jobs[0].task,
            camera_size=options.camera_size,
            cameras=options.cameras,
            seed=jobs[0].seed,
        )
        description = robot.describe()
        writer = LeRobotDatasetWriter(
            root,
            description.control_hz,
            description.robot_type,
            {c.name: (c.height, c.width) for c in description.cameras},
            description.state_names,
            description.action_names,
            live=False,
            robot_interface_version=description.interface_version,
        )
        try:
            for job in jobs:
                robot.set_task(job.task)
                obs = robot.reset(job.seed)
                mid_task = options.starts_mid_task(job)
                if mid_task:  # perturbed start at the furniture: line-up and recovery data without the drive
                    start_near(robot, FURNITURE_OF[robot.spec.moves[0].source], np.random.default_rng(job.seed))
                    obs = robot.observe()
                expert = ScriptedExpert(robot, noise=options.noise, seed=job.seed)
                writer.begin_episode(
                    job.task,
                    metadata={
                        SEED_KEY: job.seed,
                        "noise": options.noise,
                        "expert": "scripted",
                        "robot": options.robot,
                        "mid_task": mid_task,
                    },
                )
                label, steps = None, 0
                while steps < options.max_steps:
                    executed, new_label = expert.act()
                    if expert.done:
                        break
                    if new_label != label:
                        writer.set_subtask(new_label, "expert")
                        label = new_label
                    # with noise the robot executes the perturbed action but we record the expert's correction
                    # (DART): the state shows the perturbation, the label shows how to recover from it
                    writer.add_frame(obs.images, obs.state, np.asarray(expert.last_clean_action, np.float32))
                    robot.act(executed)
                    obs = robot.observe()
                    steps += 1
                success = bool(robot.task_success())
                outcome = "succeeded" if success else ("timeout" if steps >= options.max_steps else "failed")
                writer.end_episode(outcome, success)
                progress.put(("episode", worker_id, job.seed, success, steps))
        finally:
            writer.close()
            robot.close()
    except BaseException as exc:
        progress.put(("error", worker_id, f"{type(exc).__name__}: {exc}"))
        raise


def _recover(worker_roots: list[Path]) -> None:
    """Open (and close) each worker dataset so that an episode a kill interrupted is finished or discarded now,
    before we decide which jobs are done: one whose end was already recorded counts, a truncated one does not."""
    from policy.data.merge import writer_like
    from policy.data.reader import LeRobotDatasetReader

    for root in worker_roots:
        if (root / "meta" / "info.json").exists():
            writer_like(LeRobotDatasetReader(root), root).close()


def _merge(out: Path, worker_roots: list[Path]) -> int:
    """Merge worker episodes into `out` in seed order, at most one episode per seed (the first one found)."""
    from policy.data.merge import merge_datasets

    taken = _done_seeds(out)

    def skip(info) -> bool:
        if SEED_KEY not in info.metadata or int(info.metadata[SEED_KEY]) in taken:
            return True
        taken.add(int(info.metadata[SEED_KEY]))
        return False

    return merge_datasets(out, worker_roots, order=lambda info: int(info.metadata.get(SEED_KEY, 0)), skip=skip)


def collect(
    out: Path,
    tasks: list[str],
    episodes: int,
    workers: int,
    seed: int,
    options: WorkerOptions,
    progress_bar: bool = True,
) -> dict[str, int]:
    """Run the jobs not done yet in `workers` processes and merge everything into `out`."""
    import multiprocessing

    from tqdm import tqdm

    out = Path(out)
    work_dir = out / COLLECT_DIR
    work_dir.mkdir(parents=True, exist_ok=True)
    existing_workers = sorted(p for p in work_dir.glob("worker-*") if p.is_dir())
    _recover(existing_workers)
    done = _done_seeds(out)
    for path in existing_workers:
        done |= _done_seeds(path)
    jobs = [job for job in plan_jobs(tasks, episodes, seed) if job.seed not in done]
    workers = max(1, min(workers, len(jobs))) if jobs else 0
    failures: dict[int, str] = {}
    successes = 0
    if jobs:
        context = multiprocessing.get_context("spawn")  # MuJoCo/EGL state must not be forked
        progress = context.Queue()
        processes = []
        for w in range(workers):
            mine = jobs[w::workers]
            process = context.Process(
                target=run_worker,
                args=(w, str(work_dir / f"worker-{w}"), mine, options, progress, os.getpid()),
                name=f"collect-worker-{w}",
                daemon=True,
            )
            process.start()
            processes.append(process)
        bar = tqdm(total=len(jobs), desc="episodes", unit="ep", disable=not progress_bar, file=sys.stderr)
        finished = 0
        try:
            while finished < len(jobs) and (any(p.is_alive() for p in processes) or not progress.empty()):
                try:
                    message = progress.get(timeout=0.5)
                except Exception:  # queue.Empty: nothing new, check the workers again
                    continue
                if message[0] == "episode":
                    finished += 1
                    successes += int(message[3])
                    bar.update(1)
                    bar.set_postfix(success=f"{successes}/{finished}")
                elif message[0] == "error":
                    failures[message[1]] = f"worker {message[1]}: {message[2]}"
            for process in processes:
                process.join(timeout=60)
        except KeyboardInterrupt:
            for process in processes:
                process.terminate()
            for process in processes:
                process.join(timeout=30)
            bar.close()
            merged = _merge(out, sorted(work_dir.glob("worker-*")))
            raise typer.Exit(_interrupted(merged)) from None
        finally:
            bar.close()
        for w, process in enumerate(processes):
            if process.exitcode != 0 and w not in failures:
                failures[w] = f"worker {w} exited with code {process.exitcode}"
    merged = _merge(out, sorted(p for p in work_dir.glob("worker-*") if p.is_dir()))
    if failures:  # worker datasets stay: what they finished is merged, the rest is collected by a rerun
        raise RuntimeError("; ".join(failures.values()))
    shutil.rmtree(work_dir, ignore_errors=True)
    return {"planned": episodes, "ran": len(jobs), "merged": merged, "succeeded": successes}


def _interrupted(merged: int) -> int:
    typer.echo(f"interrupted: {merged} finished episodes merged; run the same command again to resume", err=True)
    return 130


def command(
    task: list[str] = typer.Option(..., "--task", "-t", help="Task text (repeatable; episodes cycle through them)."),
    episodes: int = typer.Option(10, "--episodes", "-n", min=1, help="Episodes in the finished dataset."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Simulator processes."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder (created, or resumed if it exists)."),
    noise: float = typer.Option(0.0, "--noise", min=0.0, help="Expert recovery noise (0 = clean demonstrations)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first episode; episode j uses seed + j."),
    camera_size: int = typer.Option(96, "--camera-size", help="Square camera images, pixels."),
    cameras: str = typer.Option("head,wrist", "--cameras", help="Comma-separated camera names."),
    max_steps: int = typer.Option(1200, "--max-steps", min=1, help="Control ticks per episode at most."),
    robot: str = typer.Option("sim-kitchen", "--robot", help="Registered simulated robot."),
    mid_task_every: int = typer.Option(
        0, "--mid-task-every", min=0, help="Every N-th episode starts, perturbed, at its first object's furniture."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Collect scripted-expert demonstrations into a LeRobotDataset v3.0 (resumable)."""
    from robots.sim.tasks import TASKS

    unknown = [t for t in task if t not in TASKS]
    if unknown and robot == "sim-kitchen":
        raise typer.BadParameter(f"unknown task(s) {unknown}; sim-kitchen tasks: {TASKS}", param_hint="--task")
    options = WorkerOptions(
        robot=robot,
        camera_size=camera_size,
        cameras=tuple(c.strip() for c in cameras.split(",") if c.strip()),
        noise=noise,
        max_steps=max_steps,
        mid_task_every=mid_task_every,
    )
    started = time.monotonic()
    try:
        result = collect(out, list(task), episodes, workers, seed, options, progress_bar=progress)
    except RuntimeError as exc:
        typer.echo(f"collection failed: {exc}", err=True)
        raise typer.Exit(1) from None
    from policy.data.reader import LeRobotDatasetReader

    reader = LeRobotDatasetReader(out)
    total_success = sum(1 for e in reader.episodes if e.success)
    typer.echo(
        f"{out}: {len(reader.episodes)} episodes, {reader.num_frames} frames "
        f"({result['ran']} collected now, {result['merged']} merged, {total_success} successful overall) "
        f"in {time.monotonic() - started:.1f}s"
    )
    logger.info("collect finished", extra={k: v for k, v in {**asdict(options), **result}.items()})
