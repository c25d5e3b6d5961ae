"""The `hearth` command line. Subcommands live in agent/commands/<name>.py, one job each."""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from agent.cli_help import HearthGroup
from agent.config import ConfigError
from agent.logging_setup import configure_logging

# subcommand name -> module under agent.commands exposing `command` (or a typer app named `app`)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "Run the whole demo stack (sim robot, policy worker, API, console), or one task headless."),
    "run": ("run", "Run one task on a robot headless and print the subtask trace and outcome."),
    "serve-policy": ("serve_policy", "Serve a π₀.₅ checkpoint over the openpi-compatible WebSocket protocol."),
    "serve-api": ("serve_api", "Serve the operator / home-automation API with the orchestrator."),
    "console": ("console", "Start the Streamlit operator console."),
    "collect": ("collect", "Collect scripted-expert demonstrations into a LeRobotDataset v3.0."),
    "train": ("train", "Train or fine-tune a π₀.₅ model on a LeRobotDataset."),
    "eval": ("eval", "Evaluate a checkpoint with the full hierarchy in the simulator."),
    "episodes": ("episodes", "List, show and export recorded episodes."),
    "tokens": ("tokens", "Create, list and revoke API tokens."),
    "config": ("config", "Show and check deployment configuration."),
    "robot-bridge": ("robot_bridge", "Expose a robot on the network so a remote hearth agent can drive it."),
    "convert": ("convert", "Convert LeRobot / openpi π₀.₅ weights into a hearth checkpoint."),
}

app = typer.Typer(
    name="hearth",
    help="hearth: a hierarchical household robot agent on π₀.₅.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=HearthGroup,
)


@app.callback()
def main(
    log_level: str = typer.Option("INFO", "--log-level", help="debug, info, warning or error."),
    log_json: bool = typer.Option(False, "--log-json", help="Emit JSON log lines instead of key=value."),
) -> None:
    try:
        configure_logging(log_level, log_json)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--log-level") from None


def _register() -> None:
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(f"agent.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"agent.commands.{module_name}":
                continue
            raise
        if hasattr(module, "app"):
            app.add_typer(module.app, name=name, help=help_text)
        else:
            app.command(name, help=help_text)(module.command)


_register()


def run() -> None:
    """Entry point that turns user errors into one clear line and a non-zero exit, not a traceback."""
    try:
        app(standalone_mode=True)
    except ConfigError as exc:
        logging.getLogger("hearth").debug("config error", exc_info=True)
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    run()
