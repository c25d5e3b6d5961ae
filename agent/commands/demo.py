"""`hearth demo`: the main job. Starts the policy worker, the API with the simulated household, and the console;
prints the console URL and an operator token; Ctrl-C stops everything.

`hearth demo --headless --task "..."` runs one task without a browser instead (the `hearth run` path) and prints the
subtask trace and outcome, and exits non-zero unless the task succeeded. Services run as separate processes,
exactly as in a deployment, so what the demo shows is what production runs.

State lives in the deployment's home (`runs`, or `--home` / `HEARTH_HOME`): the demo exports `HEARTH_HOME` to
every service it starts, so the API, a headless run, `hearth tokens` and `hearth episodes` all use the same
`<home>/hearth.db` and `<home>/episodes/<robot>`. The operator token is kept in `<home>/demo-token` and reused
(agent/demo_token.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from agent.commands.options import random_preset_option

if TYPE_CHECKING:
    from agent.settings import DeploymentConfig
    from agent.stack import ServiceSpec

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
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Policy checkpoint (default: the bundled sim-small)."
    ),
    random_preset: str | None = random_preset_option("Serve random weights of a preset, shaped for the sim robot."),
    home: Path | None = typer.Option(
        None,
        "--home",
        "--workdir",
        envvar="HEARTH_HOME",
        help="Deployment home: database, episodes, logs and the demo token (default: runs).",
    ),
    worker_port: int = typer.Option(8765, "--worker-port"),
    api_port: int = typer.Option(8080, "--api-port"),
    console_port: int = typer.Option(8501, "--console-port"),
    max_seconds: float = typer.Option(120.0, "--max-seconds", help="Time limit for the --headless task."),
    seed: int = typer.Option(1000, "--seed", help="Scene of the --headless task (1000+: never used for training)."),
) -> None:
    """Run the whole demo stack, or one task headless."""
    from agent.settings import load_deployment

    policy_args = _policy_source(checkpoint, random_preset)
    if home is not None:  # every service and command started from here resolves the same home
        os.environ["HEARTH_HOME"] = str(home.resolve())
    config = load_deployment("local")
    config.home.mkdir(parents=True, exist_ok=True)
    if headless:
        argv = _hearth(
            "run",
            task,
            "--robot",
            "sim-kitchen",
            *policy_args,
            "--max-seconds",
            str(max_seconds),
            "--seed",
            str(seed),
            "--strict",
        )
        raise typer.Exit(subprocess.call(argv, stdin=subprocess.DEVNULL))
    _run_stack(policy_args, config, worker_port, api_port, console_port)


def stack_services(policy_args: list[str], worker_port: int, api_port: int, console_port: int) -> list[ServiceSpec]:
    """The demo's three services; the policy worker is shaped for (and checked against) the sim robot."""
    from agent.stack import ServiceSpec

    return [
        ServiceSpec(
            "policy-worker",
            # --robot: a checkpoint trained on another interface of the kitchen is refused before anything moves
            _hearth(
                "serve-policy",
                *policy_args,
                "--robot",
                "sim-kitchen",
                "--host",
                "127.0.0.1",
                "--port",
                str(worker_port),
            ),
            health_url=f"http://127.0.0.1:{worker_port}/healthz",
        ),
        ServiceSpec(
            "api",
            _hearth(
                "serve-api",
                "--deployment",
                "local",
                "--port",
                str(api_port),
                "--set",
                f"policy.url=ws://127.0.0.1:{worker_port}",
                # the API refuses tasks over the checkpoint's prompt token budget when they are created
                *(["--set", f"policy.checkpoint={policy_args[1]}"] if policy_args[0] == "--checkpoint" else []),
            ),
            health_url=f"http://127.0.0.1:{api_port}/api/v1/health",
        ),
        ServiceSpec(
            "console",
            _hearth(
                "console",
                "--api-url",
                f"http://127.0.0.1:{api_port}",
                "--host",
                "127.0.0.1",
                "--port",
                str(console_port),
            ),
            health_url=f"http://127.0.0.1:{console_port}/_stcore/health",
        ),
    ]


def _run_stack(
    policy_args: list[str], config: DeploymentConfig, worker_port: int, api_port: int, console_port: int
) -> None:
    from agent.demo_token import ensure_demo_token
    from agent.stack import Stack, StackError
    from agent.store import Store

    services = stack_services(policy_args, worker_port, api_port, console_port)
    store = Store(config.api.database_url)
    try:
        token, _created = ensure_demo_token(store, config.home / "demo-token")
    finally:
        store.close()
    stop = {"requested": False}

    def _request_stop(signum: int, _frame: object) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGTERM, _request_stop)
    stack = Stack(services, config.logs_dir)
    try:
        typer.echo("starting policy worker, API and console (first start compiles the simulator: ~30 s)...")
        stack.start()
        typer.echo(f"\n  console:  http://127.0.0.1:{console_port}")
        typer.echo(f"  API:      http://127.0.0.1:{api_port}/docs")
        typer.echo(f"  operator token: {token}  (kept in {config.home / 'demo-token'}, reused next time)")
        typer.echo(f"  more tokens:    {_tokens_hint(config.home)}")
        typer.echo(f"  data:     {config.api.database_url}, episodes in {config.episodes_root('sim-kitchen')}")
        typer.echo(f"  logs:     {config.logs_dir}\n\nPress Ctrl-C to stop.")
        while not stop["requested"]:
            failed = stack.failed()
            if failed is not None:
                typer.echo(
                    f"error: {failed.spec.name} exited ({failed.process.returncode}); last log lines:\n{failed.tail()}",
                    err=True,
                )
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


def _tokens_hint(home: Path) -> str:
    """The command that makes another token for this demo's database (run from the repository root)."""
    prefix = "" if os.environ.get("HEARTH_HOME") is None else f"HEARTH_HOME={home} "
    return f"{prefix}.venv/bin/hearth tokens create --role operator --name NAME   (or --role viewer / automation)"
