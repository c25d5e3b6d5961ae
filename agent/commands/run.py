"""`hearth run "put the can in the sink" --robot sim-kitchen`: one task, headless, with the whole hierarchy.

Prints the subtask trace as it happens, then the outcome and where the episode was recorded. Without
`--worker` it serves a policy in-process (a checkpoint, or random weights with `--random-preset`) on a
loopback port, so the same WebSocket path as a deployment is exercised.

The terminal gets the trace only; log records go to `<home>/logs/run.log` (agent/run_logs.py). Episodes are
recorded where the deployment keeps that robot's dataset (`<home>/episodes/<robot>`), so the console's review
page and `hearth episodes list` see them.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import typer

from agent.commands.options import random_preset_option


def _parse_options(items: list[str]) -> dict[str, object]:
    import yaml

    options: dict[str, object] = {}
    for item in items:
        if "=" not in item:
            raise typer.BadParameter(f"{item!r}: expected key=value", param_hint="--robot-option")
        key, value = item.split("=", 1)
        options[key.strip()] = yaml.safe_load(value) if value else ""
    return options


def _parse_coaching(items: list[str]) -> list[tuple[float, str]]:
    schedule = []
    for item in items:
        at, _, text = item.partition(":")
        try:
            seconds = float(at)
        except ValueError:
            raise typer.BadParameter(f"{item!r}: expected SECONDS:utterance", param_hint="--coach") from None
        if not text.strip():
            raise typer.BadParameter(f"{item!r}: empty utterance", param_hint="--coach")
        schedule.append((seconds, text.strip()))
    return sorted(schedule)


def command(
    task: str = typer.Argument(..., help='The household task, e.g. "put the can in the sink".'),
    robot: str = typer.Option("sim-kitchen", "--robot", help="Registered robot name."),
    robot_option: list[str] = typer.Option([], "--robot-option", help="Robot constructor option key=value."),
    worker: str | None = typer.Option(None, "--worker", help="Policy worker URL (ws://host:port)."),
    api_key: str | None = typer.Option(None, "--api-key", help="API key for the policy worker."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Serve this checkpoint in-process."),
    random_preset: str | None = random_preset_option(
        "Serve random weights of a preset, shaped for the robot (default tiny)."
    ),
    system2: str = typer.Option("local", "--system2", help="System-2 backend: local, openai or coach-only."),
    openai_url: str = typer.Option("http://127.0.0.1:8000/v1", "--openai-url"),
    openai_model: str = typer.Option("hearth-system2", "--openai-model"),
    openai_api_key: str | None = typer.Option(None, "--openai-api-key"),
    coach: list[str] = typer.Option(
        [], "--coach", help="SECONDS:utterance, a coach speaking that long after the task started."
    ),
    episodes_dir: Path | None = typer.Option(
        None, "--episodes-dir", help="LeRobotDataset root (default: the deployment's, <home>/episodes/<robot>)."
    ),
    deployment: str = typer.Option(
        "local", "--deployment", "-d", help="Deployment whose home holds episodes and logs."
    ),
    log_file: Path | None = typer.Option(
        None, "--log-file", help="Where log records go (default: <home>/logs/run.log)."
    ),
    no_record: bool = typer.Option(False, "--no-record", help="Do not record the episode."),
    max_seconds: float = typer.Option(120.0, "--max-seconds", help="Time limit for the task."),
    every_k_chunks: int = typer.Option(4, "--every-k-chunks", help="Re-ask System 2 after this many chunks."),
    seed: int = typer.Option(0, "--seed"),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 unless the task succeeded."),
    allow_unlisted: bool = typer.Option(
        False, "--allow-unlisted", help="Run a task the robot does not list (it then has no success check)."
    ),
) -> None:
    """Run one task on a robot headless and print the subtask trace and outcome."""
    from agent.run_logs import route_logs_to_file
    from agent.settings import load_deployment

    home = load_deployment(deployment)
    episodes_dir = episodes_dir or home.episodes_root(robot)
    log_path = route_logs_to_file(
        log_file or home.logs_dir / "run.log", preload=("robosuite",) if robot.startswith("sim-") else ()
    )

    from agent.events import EventBus
    from agent.orchestrator import OrchestratorConfig, RobotRuntime, TaskRejected
    from agent.system2 import make_system2
    from policy.client import PolicyClient
    from robots.registry import UnknownRobotError, make_robot

    options = _parse_options(robot_option)
    if robot.startswith("sim-"):
        options.setdefault("seed", seed)
    schedule = _parse_coaching(coach)
    if checkpoint is not None and worker is not None:
        raise typer.BadParameter("give either --worker or --checkpoint, not both")

    with contextlib.ExitStack() as stack:
        try:
            bot = make_robot(robot, **options)
        except UnknownRobotError as exc:  # a usage error: one line, no traceback
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        stack.callback(bot.close)
        description = bot.describe()
        url = worker
        if url is None:
            url = stack.enter_context(_in_process_worker(checkpoint, random_preset or "tiny", description, seed))
            typer.echo(f"policy worker (in-process) at {url}")
        policy = PolicyClient(url, api_key=api_key, timeout_s=30.0)
        stack.callback(policy.close)
        s2_client = PolicyClient(url, api_key=api_key, timeout_s=60.0) if system2 == "local" else None
        if s2_client is not None:
            stack.callback(s2_client.close)
        backend = make_system2(
            system2,
            policy_client=s2_client,
            openai_url=openai_url,
            openai_model=openai_model,
            openai_api_key=openai_api_key,
        )
        recorder = None
        if not no_record:
            from agent.recorder import EpisodeRecorder

            recorder = EpisodeRecorder(episodes_dir, description)
            stack.callback(recorder.close)
        bus = EventBus()
        events = bus.subscribe(maxsize=4096, kinds={"task_state", "subtask", "coaching", "worker", "error", "episode"})
        config = OrchestratorConfig(max_task_s=max_seconds, every_k_chunks=every_k_chunks, seed=seed, idle_observe_hz=0)
        budget = None
        if checkpoint is not None:  # tasks over the checkpoint's prompt token budget are refused up front
            from agent.prompt_budget import TokenizerBudget

            budget = TokenizerBudget.from_checkpoint(checkpoint, len(description.state))
        runtime = RobotRuntime(robot, bot, policy, backend, recorder, bus, config, prompt_budget=budget)
        runtime.start()
        stack.callback(runtime.stop)
        try:
            record = runtime.submit(task, allow_unlisted=allow_unlisted)
        except TaskRejected as exc:  # unknown task, prompt over the policy's token budget: one line, no traceback
            typer.echo(f"error: {exc.message} ({exc.code})", err=True)
            raise typer.Exit(2) from None
        for warning in record.warnings:
            typer.echo(f"warning: {warning}")
        started = time.monotonic()
        running_since: float | None = None  # coaching times count from when the task starts running
        typer.echo(f"task {record.id}: {task!r} on {robot}")
        while True:
            event = events.get(timeout=0.2)
            elapsed = time.monotonic() - started
            if running_since is None and runtime.task(record.id).started_at is not None:
                running_since = time.monotonic()
            while schedule and running_since is not None and time.monotonic() - running_since >= schedule[0][0]:
                _, utterance = schedule.pop(0)
                try:
                    runtime.coach(record.id, utterance)
                except Exception as exc:
                    typer.echo(f"[{elapsed:6.1f}s] coaching {utterance!r} not applied: {exc}")
            if event is not None:
                _echo_event(event, elapsed)
            if runtime.task(record.id).state.terminal and (event is None or event.kind == "episode"):
                break
        final = runtime.task(record.id)
        typer.echo("")
        typer.echo("subtask trace:")
        for subtask in final.subtasks:
            duration = (subtask.ended_at or final.ended_at or time.time()) - subtask.started_at
            typer.echo(f"  [{subtask.source.value:6}] {subtask.text}  ({duration:.1f}s)")
        if not final.subtasks:
            typer.echo("  (none)")
        status = runtime.status()
        typer.echo(f"outcome: {final.state.value} ({final.reason})")
        typer.echo(f"success: {final.success}")
        typer.echo(
            f"chunks: {status['chunks']}, actions: {status['executed_actions']}, "
            f"empty ticks: {status['empty_ticks']}, achieved {status['achieved_hz']} Hz"
        )
        if final.episode_path:
            typer.echo(f"episode: {final.episode_path} (episode {final.episode_index})")
        else:
            typer.echo("episode: not recorded")
    typer.echo(f"logs: {log_path}")
    if strict and final.state.value != "succeeded":
        raise typer.Exit(1)


def _echo_event(event, elapsed: float) -> None:
    data = event.data
    stamp = f"[{elapsed:6.1f}s]"
    if event.kind == "subtask":
        typer.echo(f"{stamp} subtask ({data['source']}): {data['text']}")
    elif event.kind == "coaching" and data.get("relabel"):
        typer.echo(f"{stamp} coaching: {data['relabel']}")
    elif event.kind == "coaching":
        typer.echo(f"{stamp} coaching released: {data.get('reason')}")
    elif event.kind == "task_state":
        reason = f" ({data['reason']})" if data.get("reason") else ""
        typer.echo(f"{stamp} task {data['state']}{reason}")
    elif event.kind == "worker":
        typer.echo(f"{stamp} {worker_line(data['status'], data.get('reason'))}")
    elif event.kind == "error":
        typer.echo(f"{stamp} error from {data['source']}: {data['message']}")


def worker_line(status: str, reason: str | None) -> str:
    """`policy worker late by 2300 ms (...)`: the reason already names the worker, so it is not prefixed twice."""
    if reason and reason.startswith("policy worker"):
        return reason
    return f"policy worker {status}" + (f": {reason}" if reason else "")


@contextlib.contextmanager
def _in_process_worker(checkpoint: Path | None, preset: str, description, seed: int):
    """Serve a policy on a loopback port in this process (convenience for a single headless run)."""
    from policy.inference import Pi05Policy
    from policy.server import PolicyServer

    if checkpoint is not None:
        from agent.compat import PolicyMismatchError, check_policy_fits_robot

        policy = Pi05Policy.from_checkpoint(checkpoint)
        try:
            check_policy_fits_robot(policy.metadata, description, f"checkpoint {checkpoint}")
        except PolicyMismatchError as exc:  # refused before the robot moves: one line, no traceback
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    else:
        policy = Pi05Policy.build_random_for(description, preset, seed)
    server = PolicyServer(policy, host="127.0.0.1", port=0)
    with server.run_in_thread() as port:
        yield f"ws://127.0.0.1:{port}"
