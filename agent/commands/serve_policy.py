"""`hearth serve-policy`: serve a π₀.₅ checkpoint (or a random-weight preset) over the openpi WebSocket protocol.

Heavy imports (torch, the model, Ray) happen inside the command so `hearth --help` stays fast. The bound URL is
printed once listening (port 0 picks a free port, and scripts read the line); SIGTERM and SIGINT stop the
server cleanly: open connections are closed with 1001 and the inference thread is joined.

`--robot NAME` refuses to start a checkpoint that does not fit that robot (agent/compat.py: interface version,
action/state names, cameras), so a worker never serves actions in units the robot does not speak.

`--ray` serves the same protocol from Ray Serve instead (policy/fleet, `pip install hearth[fleet]`): `--replicas N`
model replicas (`--gpus-per-replica 1` puts each on its own GPU) or autoscaling between `--min-replicas` and
`--max-replicas`, behind one address. Run it again against the same cluster (`--ray-address auto`) with a new
`--checkpoint` to roll it out without dropping robots; `--write-serve-config FILE` writes the equivalent Serve
config file for `serve run` / `serve deploy` instead of deploying.
"""

from __future__ import annotations

import asyncio
import logging
import os
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
    port: int = typer.Option(
        8765, "--port", help="TCP port (hearth's default 8765; openpi clients default to 8000; 0 = any free)."
    ),
    api_key: list[str] = typer.Option(
        [], "--api-key", envvar="HEARTH_POLICY_API_KEY", help="Accepted API key (repeatable)."
    ),
    mapping: str = typer.Option("hearth", "--mapping", help="Request keys: hearth, droid, libero or aloha."),
    default_prompt: str | None = typer.Option(None, "--default-prompt", help="Prompt when a request has none (aloha)."),
    max_batch: int = typer.Option(8, "--max-batch", min=1, help="Most requests per model call."),
    batch_wait_ms: float = typer.Option(5.0, "--batch-wait-ms", min=0.0, help="Longest wait for a batch to fill."),
    device: str | None = typer.Option(None, "--device", help="torch device (default: cuda if available, else cpu)."),
    cameras: str | None = typer.Option(None, "--cameras", help="Random policy: comma-separated camera names."),
    seed: int = typer.Option(0, "--seed", help="Random policy: weight seed."),
    robot: str | None = typer.Option(
        None,
        "--robot",
        help="Refuse to start unless the policy fits this robot (robot config name such as "
        "sim-kitchen, a .yaml path, or a registered robot); random weights (hearth mapping) are shaped for it.",
    ),
    ray: bool = typer.Option(False, "--ray", help="Serve from Ray Serve replicas behind one address (hearth[fleet])."),
    replicas: int = typer.Option(1, "--replicas", min=1, help="--ray: model replicas (fixed count)."),
    min_replicas: int | None = typer.Option(None, "--min-replicas", min=0, help="--ray: autoscale down to this many."),
    max_replicas: int | None = typer.Option(None, "--max-replicas", min=1, help="--ray: autoscale up to this many."),
    target_ongoing: float = typer.Option(
        4.0, "--target-ongoing-requests", help="--ray: autoscaling target per replica."
    ),
    gpus_per_replica: float = typer.Option(
        0.0, "--gpus-per-replica", min=0.0, help="--ray: GPUs per model replica (0 = CPU)."
    ),
    cpus_per_replica: float = typer.Option(1.0, "--cpus-per-replica", min=0.0, help="--ray: CPUs per model replica."),
    ingress_replicas: int = typer.Option(
        1, "--ingress-replicas", min=1, help="--ray: WebSocket front ends (no model; add one per few hundred robots)."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="--ray: join this cluster ('auto' = the local one) instead of starting Ray here."
    ),
    version: str | None = typer.Option(
        None, "--version", help="--ray: label replies carry (default: checkpoint name)."
    ),
    write_serve_config: Path | None = typer.Option(
        None, "--write-serve-config", help="--ray: write the Serve config file (YAML) here and exit."
    ),
    fast_path: bool = typer.Option(
        True,
        "--fast-path/--no-fast-path",
        help="On CUDA, serve through the fast path (static KV cache, CUDA graphs); --no-fast-path runs eager.",
    ),
) -> None:
    """Serve System 1 (actions) and System 2 (subtasks) to robots and openpi clients."""
    from policy.mappings import MAPPING_NAMES

    if not fast_path:  # read by every Pi05Policy this process (and the Ray workers it starts) builds
        os.environ["HEARTH_FAST_PATH"] = "0"

    if mapping not in MAPPING_NAMES:
        raise typer.BadParameter(
            f"unknown mapping {mapping!r}; expected one of {list(MAPPING_NAMES)}", param_hint="--mapping"
        )
    if (checkpoint is None) == (random_preset is None):
        raise typer.BadParameter(
            "give exactly one of --checkpoint DIR or --random-preset NAME", param_hint="--checkpoint"
        )

    if checkpoint is not None and not checkpoint.is_dir():
        raise typer.BadParameter(f"checkpoint folder {checkpoint} does not exist", param_hint="--checkpoint")
    description = _robot_description(robot) if robot else None
    source = _policy_source(checkpoint, random_preset, mapping, cameras, seed, description, version)

    if ray:
        from pydantic import ValidationError

        from policy.fleet.config import FleetConfig

        try:
            fleet = FleetConfig(
                policy=source,
                replicas=replicas,
                min_replicas=min_replicas,
                max_replicas=max_replicas,
                target_ongoing_requests=target_ongoing,
                gpus_per_replica=gpus_per_replica,
                cpus_per_replica=cpus_per_replica,
                ingress_replicas=ingress_replicas,
                max_batch=max_batch,
                batch_wait_ms=batch_wait_ms,
                mapping=mapping,
                default_prompt=default_prompt,
                api_keys=list(api_key),
                host=host,
                port=port,
            )
        except ValidationError as exc:
            raise typer.BadParameter(str(exc), param_hint="--ray") from None
        if port == 0:
            raise typer.BadParameter(
                "--ray needs a fixed --port (Serve's proxy binds it on every node)", param_hint="--port"
            )
        _check_mapping(mapping, _source_metadata(source), default_prompt, source.label)
        if description is not None:
            _check_fits(_source_metadata(source), description, source.label)
        _serve_on_ray(fleet, ray_address, write_serve_config)
        return

    from policy.server import PolicyServer

    try:
        policy = source.build(device if checkpoint is not None or device else "cpu")
    except (ValueError, OSError) as exc:
        what, hint = (f"checkpoint {checkpoint}", "--checkpoint") if checkpoint else (source.label, "--random-preset")
        raise typer.BadParameter(f"cannot load {what}: {exc}", param_hint=hint) from exc
    _check_mapping(mapping, policy.metadata, default_prompt, checkpoint or f"random {random_preset} policy")
    if description is not None:
        _check_fits(
            policy.metadata, description, f"checkpoint {checkpoint}" if checkpoint else f"random {random_preset} policy"
        )

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
            typer.echo(
                f"policy worker listening on {url} (mapping={mapping}, auth={'on' if server.api_keys else 'off'})"
            )

        await server.serve(on_ready=announce)

    asyncio.run(main())
    typer.echo("policy worker stopped")


def _policy_source(
    checkpoint: Path | None,
    random_preset: str | None,
    mapping: str,
    cameras: str | None,
    seed: int,
    description: Any,
    version: str | None,
):
    """The PolicySource both serving paths build from: a checkpoint, or random weights shaped for a robot/mapping."""
    from policy.fleet.config import PolicySource
    from policy.mappings import mapping_defaults

    if checkpoint is not None:
        return PolicySource(checkpoint=str(checkpoint), version=version)
    if description is not None and mapping == "hearth":
        return PolicySource(
            random_preset=random_preset,
            camera_names=list(description.camera_names),
            state_names=list(description.state_names),
            action_names=list(description.action_names),
            control_hz=description.control_hz,
            seed=seed,
            robot_type=description.robot_type,
            robot_interface_version=description.interface_version,
            version=version,
        )
    default_cameras, state_dim, action_dim = mapping_defaults(mapping)
    camera_names = [c.strip() for c in cameras.split(",") if c.strip()] if cameras else list(default_cameras)
    return PolicySource(
        random_preset=random_preset,
        camera_names=camera_names,
        state_names=[f"state_{i}" for i in range(state_dim)],
        action_names=[f"action_{i}" for i in range(action_dim)],
        seed=seed,
        version=version,
    )


def _source_metadata(source: Any) -> dict[str, Any]:
    """A policy's metadata without loading its weights (the fleet's replicas load them, not this process)."""
    if source.checkpoint is not None:
        from policy.checkpoints import read_config

        return dict(read_config(Path(source.checkpoint)).metadata)
    return source.model_dump(
        include={"camera_names", "state_names", "action_names", "control_hz", "robot_type", "robot_interface_version"}
    )


def _check_fits(metadata: Any, description: Any, source: str) -> None:
    from agent.compat import PolicyMismatchError, check_policy_fits_robot

    try:
        check_policy_fits_robot(metadata, description, source)
    except PolicyMismatchError as exc:  # refused at start-up: one line, no traceback
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _serve_on_ray(fleet: Any, address: str | None, write_serve_config: Path | None) -> None:
    """Deploy the fleet (or only write its Serve config file); block until SIGTERM/SIGINT when Ray started here."""
    try:
        from policy.fleet.app import FleetDeployError, deploy, serve_config
    except ImportError as exc:
        typer.echo(f"error: --ray needs Ray Serve ({exc}); install it with: pip install 'hearth[fleet]'", err=True)
        raise typer.Exit(2) from None
    if write_serve_config is not None:
        import yaml

        write_serve_config.write_text(yaml.safe_dump(serve_config(fleet), sort_keys=False))
        typer.echo(f"wrote {write_serve_config}; deploy it with: serve run {write_serve_config}")
        return
    import threading

    import ray
    from ray import serve

    try:
        url = deploy(fleet, address=address)
    except FleetDeployError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    scaling = (
        f"{fleet.min_replicas}..{fleet.max_replicas} replicas (autoscaling)"
        if fleet.max_replicas
        else f"{fleet.replicas} replicas"
    )
    typer.echo(
        f"policy fleet listening on {url} ({scaling}, serving {fleet.policy.label}, mapping={fleet.mapping}, "
        f"auth={'on' if fleet.api_keys else 'off'})"
    )
    if address is not None:
        typer.echo("deployed to the running cluster; it keeps serving after this command exits")
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):  # a timed wait, so the signal handler runs promptly
        pass
    serve.shutdown()
    ray.shutdown()
    typer.echo("policy fleet stopped")


def _check_mapping(mapping: str, metadata: Any, default_prompt: str | None, source: object) -> None:
    """Refuse at start a policy whose sizes cannot serve the mapping's robot (policy/mappings.py check_compatible):
    otherwise the worker starts and then rejects every request of, say, a LIBERO client."""
    from policy.mappings import PolicySpec, get_mapping

    spec = PolicySpec(
        camera_names=list(metadata["camera_names"]),
        state_dim=len(metadata["state_names"]),
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
        raise typer.BadParameter(
            f"cannot build robot {name!r} to read its description: {exc}", param_hint="--robot"
        ) from None
