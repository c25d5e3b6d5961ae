"""`hearth eval`: run a checkpoint's full hierarchy (System 2 + System 1) in the simulator on held-out seeds."""

from __future__ import annotations

from pathlib import Path

import typer


def command(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="hearth checkpoint folder."),
    task: list[str] = typer.Option([], "--task", "-t", help="Task text (repeatable); default: every sim task."),
    episodes: int = typer.Option(10, "--episodes", "-n", min=1, help="Episodes per task."),
    seed_offset: int = typer.Option(1000, "--seed-offset", help="Episode i uses seed offset+i (collection uses 0..)."),
    max_steps: int = typer.Option(1200, "--max-steps", min=1, help="Control ticks per episode at most (60 s)."),
    execute_steps: int | None = typer.Option(
        None, "--execute-steps", min=1, help="Actions run from each chunk (default: half the policy's horizon)."
    ),
    camera_size: int = typer.Option(96, "--camera-size", help="Sim camera pixels (resized to the model's input)."),
    record: Path | None = typer.Option(None, "--record", help="Episode dataset folder (default: OUT/episodes)."),
    out: Path = typer.Option(Path("runs/eval"), "--out", "-o", help="Folder for eval.json and the episodes."),
    no_record: bool = typer.Option(False, "--no-record", help="Do not write the episodes."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)."),
    per_subtask: bool = typer.Option(
        False, "--per-subtask", help="System 1 alone: each subtask from the expert's state with the correct text."
    ),
    slack: float = typer.Option(3.0, "--slack", min=1.0, help="--per-subtask: ticks allowed per expert tick."),
    blank_images: bool = typer.Option(False, "--blank-images", help="Ablation: the policy sees black images."),
) -> None:
    """Success rate, task progress and subtask accuracy per task; episodes are written for review.

    With --per-subtask: System 1's success per subtask type (go to / pick / place), each attempt starting from
    the scripted expert's state at that subtask's start, prompted with the expert's subtask text.
    """
    from robots.sim.tasks import TASKS

    unknown = [t for t in task if t not in TASKS]
    if unknown:
        raise typer.BadParameter(f"unknown task(s) {unknown}; sim tasks: {TASKS}", param_hint="--task")
    from agent.compat import PolicyMismatchError
    from agent.evaluation import BlindPolicy, EvalSettings, evaluate, plan_jobs, write_report
    from policy.checkpoints import CheckpointError
    from policy.inference import Pi05Policy

    try:
        policy = Pi05Policy.from_checkpoint(checkpoint, device=device)
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--checkpoint") from None
    if execute_steps is None:  # openpi's LIBERO recipe replans after half of a 10-step chunk as well
        execute_steps = max(1, int(policy.metadata["action_horizon"]) // 2)
    if blank_images:
        policy = BlindPolicy(policy)
    if per_subtask:
        _per_subtask(policy, task or TASKS, episodes, seed_offset, slack, execute_steps, camera_size, out, checkpoint)
        return
    record_dir = None if no_record else (record or out / "episodes")
    settings = EvalSettings(
        episodes=episodes,
        seed_offset=seed_offset,
        max_steps=max_steps,
        execute_steps=execute_steps,
        camera_size=camera_size,
        record_dir=record_dir,
    )

    def report(result) -> None:
        typer.echo(
            f"{result.task!r} seed {result.seed}: {'success' if result.success else 'failure'}, "
            f"progress {result.progress:.2f}, subtask accuracy {result.subtask_accuracy:.2f}, "
            f"{result.steps} steps, ended by {result.ended_by}"
        )

    try:
        results = evaluate(
            policy,
            plan_jobs(task or TASKS, episodes, seed_offset),
            settings,
            on_episode=report,
            source=f"checkpoint {checkpoint}",
        )
    except PolicyMismatchError as exc:  # refused before the robot moved: one line, no traceback
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    summary = write_report(results, out / "eval.json", {"checkpoint": str(checkpoint), "seed_offset": seed_offset})
    typer.echo(summary["table"])
    typer.echo(f"report: {out / 'eval.json'}" + (f"; episodes: {record_dir}" if record_dir else ""))


def _per_subtask(policy, tasks, episodes, seed_offset, slack, execute_steps, camera_size, out, checkpoint) -> None:
    from agent.compat import PolicyMismatchError
    from agent.subtask_eval import evaluate_subtasks, write_subtask_report

    def report(r) -> None:
        typer.echo(
            f"{r.task!r} seed {r.seed} [{r.index}] {r.subtask!r}: {'success' if r.success else 'failure'} "
            f"in {r.ticks} ticks (expert {r.expert_ticks})"
            + "".join(f", {name} {value:.3f}" for name, value in r.detail.items())
        )

    try:
        results = evaluate_subtasks(
            policy,
            tasks,
            episodes,
            seed_offset,
            slack,
            execute_steps,
            camera_size,
            on_result=report,
            source=f"checkpoint {checkpoint}",
        )
    except PolicyMismatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    summary = write_subtask_report(
        results, out / "per_subtask.json", {"checkpoint": str(checkpoint), "seed_offset": seed_offset, "slack": slack}
    )
    typer.echo(summary["table"])
    typer.echo(f"report: {out / 'per_subtask.json'}")
