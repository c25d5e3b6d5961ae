"""`hearth config show`: print a deployment config after file, env and CLI overrides, or the first error."""

from __future__ import annotations

import typer
import yaml

app = typer.Typer(no_args_is_help=True)


@app.command("show")
def show(
    deployment: str = typer.Argument("local", help="A name under configs/deployments or a YAML path."),
    set_: list[str] = typer.Option([], "--set", help="Override a key: section.key=value (repeatable)."),
) -> None:
    """Print the fully resolved deployment configuration as YAML."""
    from agent.settings import load_deployment

    config = load_deployment(deployment, set_)
    typer.echo(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
