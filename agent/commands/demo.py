"""`hearth demo`: the main job. Starts the policy worker, the API with the simulated household, and the console;
prints the console URL and an operator token; Ctrl-C stops everything.

`hearth demo --headless --task "..."` runs one task without a browser instead (the `hearth run` path) and prints the
subtask trace and outcome. Services run as separate processes, exactly as in a deployment, so what the demo shows
is what production runs.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import typer

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_CHECKPOINT = REPO_ROOT / "checkpoints" / "sim-small"
DEFAULT_TASK = "put the can in the sink"


def _hearth(*args: str) -> list[str]:
    return [sys.executable, "-m", "agent.cli", *args]


def _policy_source(checkpoint: Path | None, random_preset: str | None) -> list[str]:
    if random_preset:
        return ["--random-preset", random_preset]
    checkpoint = checkpoint or BUNDLED_CHECKPOINT
    if not (checkpoint / "config.json").exists():
        typer.echo(
            f"error: no checkpoint at {checkpoint} (config.json missing); train one with `hearth train` or pass "
            "--random-preset tiny to run the stack with random weights",
            err=True,
        )
        raise typer.Exit(2)
    return ["--checkpoint", str(checkpoint)]


def command(
    headless: bool = typer.Option(False, "--headless", help="Run one task without the console and exit."),
    task: str = typer.Option(DEFAULT_TASK, "--task", help="Task for --headless."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Policy checkpoint (default: the bundled sim-small)."),
    random_preset: str | None = typer.Option(None, "--random-preset", help="Serve random weights of a preset instead."),
    workdir: Path = typer.Option(Path("runs/demo"), "--workdir", help="Database, episodes and service logs."),
    worker_port: int = typer.Option(8765, "--worker-port"),
    api_port: int = typer.Option(8080, "--api-port"),
    console_port: int = typer.Option(8501, "--console-port"),
    max_seconds: float = typer.Option(120.0, "--max-seconds", help="Time limit for the --headless task."),
    seed: int = typer.Option(1000, "--seed", help="Scene of the --headless task (1000+: never used for training)."),
) -> None:
    """Run the whole demo stack, or one task headless."""
    policy_args = _policy_source(checkpoint, random_preset)
    workdir.mkdir(parents=True, exist_ok=True)
    if headless:
        argv = _hearth(
            "run", task, "--robot", "sim-kitchen", *policy_args,
            "--episodes-dir", str(workdir / "episodes"), "--max-seconds", str(max_seconds), "--seed", str(seed),
        )
        raise typer.Exit(subprocess.call(argv, stdin=subprocess.DEVNULL))
    _run_stack(policy_args, workdir, worker_port, api_port, console_port)


def _run_stack(policy_args: list[str], workdir: Path, worker_port: int, api_port: int, console_port: int) -> None:
    from agent.stack import ServiceSpec, Stack, StackError

    database_url = f"sqlite:///{(workdir / 'hearth.db').resolve()}"
    deployment = [
        "--set", f"policy.url=ws://127.0.0.1:{worker_port}",
        "--set", f"api.database_url={database_url}",
        "--set", f"episodes_dir={(workdir / 'episodes').resolve()}",
    ]
    services = [
        ServiceSpec(
            "policy-worker",
            # --robot: a checkpoint trained on another interface of the kitchen is refused before anything moves
            _hearth("serve-policy", *policy_args, "--robot", "sim-kitchen", "--host", "127.0.0.1",
                    "--port", str(worker_port)),
            health_url=f"http://127.0.0.1:{worker_port}/healthz",
        ),
        ServiceSpec(
            "api",
            _hearth("serve-api", "--deployment", "local", "--port", str(api_port), *deployment),
            health_url=f"http://127.0.0.1:{api_port}/api/v1/health",
        ),
        ServiceSpec(
            "console",
            _hearth("console", "--api-url", f"http://127.0.0.1:{api_port}", "--host", "127.0.0.1", "--port", str(console_port)),
            health_url=f"http://127.0.0.1:{console_port}/_stcore/health",
        ),
    ]
    token = subprocess.run(
        _hearth("tokens", "create", "--role", "operator", "--name", "demo", "--quiet", "--database-url", database_url),
        capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
    )
    if token.returncode != 0:
        typer.echo(f"error: could not create an operator token: {token.stderr.strip()}", err=True)
        raise typer.Exit(2)
    stop = {"requested": False}

    def _request_stop(signum: int, _frame: object) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGTERM, _request_stop)
    stack = Stack(services, workdir / "logs")
    try:
        typer.echo("starting policy worker, API and console (first start compiles the simulator: ~30 s)...")
        stack.start()
        typer.echo(f"\n  console:  http://127.0.0.1:{console_port}")
        typer.echo(f"  API:      http://127.0.0.1:{api_port}/docs")
        typer.echo(f"  operator token: {token.stdout.strip()}")
        typer.echo(f"  logs:     {workdir / 'logs'}\n\nPress Ctrl-C to stop.")
        while not stop["requested"]:
            failed = stack.failed()
            if failed is not None:
                typer.echo(f"error: {failed.spec.name} exited ({failed.process.returncode}); last log lines:\n{failed.tail()}", err=True)
                raise typer.Exit(1)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        typer.echo("stopping...")
        stack.stop()
        typer.echo("stopped.")

