"""`hearth robot-bridge`: run on the robot's computer to let a remote hearth agent drive a registered robot.

The robot is always wrapped in SafeRobot here, on the robot side, so its limits, e-stop latch and watchdog hold
even when the network between agent and robot fails (robots/bridge_server.py says how). MuJoCo or hardware
drivers are imported inside the command, never at `hearth --help` time.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import typer

logger = logging.getLogger(__name__)


def parse_robot_options(items: list[str]) -> dict[str, object]:
    """``k=v`` pairs; values are YAML (``camera_size=64`` is an int, ``cameras=[head,wrist]`` a list)."""
    import yaml

    options: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r}: expected key=value", param_hint="--robot-option")
        try:
            options[key.strip()] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError as exc:
            raise typer.BadParameter(f"{item!r}: value is not valid YAML: {exc}", param_hint="--robot-option") from None
    return options


def command(
    robot: str | None = typer.Option(None, "--robot", help="Registered robot name (e.g. sim-kitchen)."),
    robot_option: list[str] = typer.Option(
        [], "--robot-option", help="Robot constructor option key=value (repeatable)."
    ),
    robot_config: str | None = typer.Option(
        None,
        "--robot-config",
        help="Robot config (configs/robots/<name>.yaml or a path): kind, options, safety limits.",
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to bind; 0.0.0.0 exposes the robot on the network."
    ),
    port: int = typer.Option(8770, "--port", help="TCP port (0 = any free port)."),
    api_key: list[str] = typer.Option(
        [], "--api-key", envvar="HEARTH_BRIDGE_API_KEY", help="Accepted API key (repeatable)."
    ),
    watchdog_timeout_s: float | None = typer.Option(
        None,
        "--watchdog-timeout-s",
        help="Hold the robot when no command arrives for this long (default 0.5 s or the config's).",
    ),
    keepalive_s: float = typer.Option(
        2.0, "--keepalive-s", min=0.1, help="Ping interval; a silent agent is dropped after 2x."
    ),
) -> None:
    """Serve a robot, behind its safety layer, to remote hearth agents over a WebSocket."""
    from robots.bridge_server import BridgeServer
    from robots.config import RobotConfigError, load_robot_config
    from robots.registry import UnknownRobotError, make_robot
    from robots.safety import SafeRobot, SafetyLimits

    options = parse_robot_options(robot_option)
    limits = SafetyLimits()
    watchdog = 0.5
    kind = robot
    if robot_config is not None:
        try:
            config = load_robot_config(Path(robot_config) if robot_config.endswith((".yaml", ".yml")) else robot_config)
        except RobotConfigError as exc:
            raise typer.BadParameter(str(exc), param_hint="--robot-config") from None
        if not config.safety.enabled:
            raise typer.BadParameter(
                "the robot bridge always runs the safety layer; remove 'safety: {enabled: false}'",
                param_hint="--robot-config",
            )
        kind = robot or config.kind
        options = {**config.options, **options}
        limits = config.safety.limits
        watchdog = config.safety.watchdog_timeout_s
    if kind is None:
        raise typer.BadParameter("give --robot NAME or --robot-config CONFIG", param_hint="--robot")
    if kind == "bridge":
        raise typer.BadParameter("a bridge cannot serve another bridge; name the real robot", param_hint="--robot")
    if watchdog_timeout_s is not None:
        if watchdog_timeout_s <= 0:
            raise typer.BadParameter("must be > 0", param_hint="--watchdog-timeout-s")
        watchdog = watchdog_timeout_s

    try:
        inner = make_robot(kind, **options)
    except UnknownRobotError as exc:
        raise typer.BadParameter(str(exc), param_hint="--robot") from None
    except (TypeError, ValueError) as exc:
        raise typer.BadParameter(
            f"cannot build robot {kind!r} with {options}: {exc}", param_hint="--robot-option"
        ) from None
    if not api_key and host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("robot bridge on %s without --api-key: anyone who can reach this port can drive the robot", host)
    safe = SafeRobot(inner, limits, watchdog_timeout_s=watchdog)
    server = BridgeServer(safe, host=host, port=port, api_keys=list(api_key), keepalive_s=keepalive_s)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.stop)

        def announce(url: str) -> None:
            typer.echo(
                f"robot bridge for {kind} listening on {url} (watchdog {watchdog:.2f} s, "
                f"auth={'on' if server.api_keys else 'off'})"
            )

        await server.serve(on_ready=announce)

    try:
        asyncio.run(main())
    finally:
        safe.close()
    typer.echo("robot bridge stopped")
