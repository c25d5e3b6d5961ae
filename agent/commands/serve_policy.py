"""`hearth serve-policy`: serve a π₀.₅ checkpoint (or a random-weight preset) over the openpi WebSocket protocol.

Heavy imports (torch, the model) happen inside the command so `hearth --help` stays fast. The bound URL is
printed once listening (port 0 picks a free port, and scripts read the line); SIGTERM and SIGINT stop the
server cleanly: open connections are closed with 1001 and the inference thread is joined.

`--robot NAME` refuses to start a checkpoint that does not fit that robot (agent/compat.py: interface version,
action/state names, cameras), so a worker never serves actions in units the robot does not speak.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

import typer

from agent.commands.options import random_preset_option

logger = logging.getLogger(__name__)


def command(
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="A hearth checkpoint folder."),
    random_preset: str | None = random_preset_option("Serve random weights of this preset instead of a checkpoint."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; 0.0.0.0 exposes the worker."),
    port: int = typer.Option(8765, "--port", help="TCP port (hearth's default 8765; openpi clients default to 8000; 0 = any free)."),
    api_key: list[str] = typer.Option([], "--api-key", envvar="HEARTH_POLICY_API_KEY", help="Accepted API key (repeatable)."),
    mapping: str = typer.Option("hearth", "--mapping", help="Request keys: hearth, droid, libero or aloha."),
    default_prompt: str | None = typer.Option(None, "--default-prompt", help="Prompt when a request has none (aloha)."),
    max_batch: int = typer.Option(8, "--max-batch", min=1, help="Most requests per model call."),
    batch_wait_ms: float = typer.Option(5.0, "--batch-wait-ms", min=0.0, help="Longest wait for a batch to fill."),
    device: str | None = typer.Option(None, "--device", help="torch device (default: cuda if available, else cpu)."),
    cameras: str | None = typer.Option(None, "--cameras", help="Random policy: comma-separated camera names."),
    seed: int = typer.Option(0, "--seed", help="Random policy: weight seed."),
    robot: str | None = typer.Option(
        None, "--robot", help="Refuse to start unless the policy fits this robot (robot config name such as "
        "sim-kitchen, a .yaml path, or a registered robot); random weights (hearth mapping) are shaped for it."
    ),
) -> None:
    """Serve System 1 (actions) and System 2 (subtasks) to robots and openpi clients."""
    from policy.mappings import MAPPING_NAMES, mapping_defaults
    from policy.server import PolicyServer

    if mapping not in MAPPING_NAMES:
        raise typer.BadParameter(f"unknown mapping {mapping!r}; expected one of {list(MAPPING_NAMES)}", param_hint="--mapping")
    if (checkpoint is None) == (random_preset is None):
        raise typer.BadParameter("give exactly one of --checkpoint DIR or --random-preset NAME", param_hint="--checkpoint")

    if checkpoint is not None and not checkpoint.is_dir():
        raise typer.BadParameter(f"checkpoint folder {checkpoint} does not exist", param_hint="--checkpoint")
    description = _robot_description(robot) if robot else None

    from policy.inference import Pi05Policy

    if checkpoint is not None:
        from policy.checkpoints import CheckpointError

        try:
            policy = Pi05Policy.from_checkpoint(checkpoint, device=device)
        except (CheckpointError, ValueError, OSError) as exc:
            raise typer.BadParameter(f"cannot load checkpoint {checkpoint}: {exc}", param_hint="--checkpoint") from exc
    elif description is not None and mapping == "hearth":
        policy = Pi05Policy.build_random(
            random_preset, camera_names=tuple(description.camera_names), state_names=description.state_names,
            action_names=description.action_names, control_hz=description.control_hz, seed=seed,
            robot_type=description.robot_type, robot_interface_version=description.interface_version,
        )
    else:
        default_cameras, state_dim, action_dim = mapping_defaults(mapping)
        camera_names = tuple(c.strip() for c in cameras.split(",") if c.strip()) if cameras else default_cameras
        policy = Pi05Policy.build_random(
            random_preset,
            camera_names=camera_names,
            state_names=[f"state_{i}" for i in range(state_dim)],
            action_names=[f"action_{i}" for i in range(action_dim)],
            seed=seed,
        )

    _check_mapping(mapping, policy.metadata, default_prompt, checkpoint or f"random {random_preset} policy")

    if description is not None:
        from agent.compat import PolicyMismatchError, check_policy_fits_robot

        try:
            source = f"checkpoint {checkpoint}" if checkpoint is not None else f"random {random_preset} policy"
            check_policy_fits_robot(policy.metadata, description, source)
        except PolicyMismatchError as exc:  # refused at start-up: one line, no traceback
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    server = PolicyServer(
        policy,
        host=host,
        port=port,
        api_keys=list(api_key),
        max_batch=max_batch,
        batch_wait_ms=batch_wait_ms,
        mapping=mapping,
        default_prompt=default_prompt,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.stop)

        def announce(url: str) -> None:
            typer.echo(f"policy worker listening on {url} (mapping={mapping}, auth={'on' if server.api_keys else 'off'})")

        await server.serve(on_ready=announce)

    asyncio.run(main())
    typer.echo("policy worker stopped")


def _check_mapping(mapping: str, metadata: Any, default_prompt: str | None, source: object) -> None:
    """Refuse at start a policy whose sizes cannot serve the mapping's robot (policy/mappings.py check_compatible):
    otherwise the worker starts and then rejects every request of, say, a LIBERO client."""
    from policy.mappings import PolicySpec, get_mapping

    spec = PolicySpec(
        camera_names=list(metadata["camera_names"]), state_dim=len(metadata["state_names"]),
        action_dim=int(metadata.get("action_dim") or len(metadata["action_names"])),
        action_horizon=int(metadata.get("action_horizon") or 1),
    )
    try:
        get_mapping(mapping, spec, default_prompt=default_prompt)
    except ValueError as exc:  # refused at start-up: one line naming the sizes, no traceback
        typer.echo(f"error: {source} cannot serve --mapping {mapping}: {exc}", err=True)
        raise typer.Exit(2) from None


def _robot_description(name: str):
    """The RobotDescription of `--robot NAME`; an unknown or unbuildable robot is a usage error."""
    from agent.compat import describe_robot
    from robots.config import RobotConfigError
    from robots.registry import UnknownRobotError

    try:
        return describe_robot(name)
    except (RobotConfigError, UnknownRobotError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--robot") from None
    except (TypeError, ValueError, OSError) as exc:
        raise typer.BadParameter(f"cannot build robot {name!r} to read its description: {exc}", param_hint="--robot") from None
