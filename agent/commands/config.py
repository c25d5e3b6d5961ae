"""`hearth config show`: print a deployment config after file, env and CLI overrides, or the first error.

What is printed is what a process would run with: every default filled in (the orchestrator's `max_task_s`,
`worker_late_s`, ... too, though the deployment file may leave that section empty) and the state paths resolved
under the deployment's home. Secrets are masked (agent/redact.py): the output ends up in chat threads and bug
reports.
"""

from __future__ import annotations

from typing import Any

import typer
import yaml

app = typer.Typer(no_args_is_help=True)


def resolved_config(deployment: str, overrides: list[str]) -> dict[str, Any]:
    """The deployment as a JSON-like tree with defaults filled in and secrets masked."""
    from pydantic import ValidationError

    from agent.config import ConfigError, format_validation_error
    from agent.orchestrator import OrchestratorConfig
    from agent.redact import mask_secrets
    from agent.settings import load_deployment

    config = load_deployment(deployment, overrides)
    tree = config.model_dump(mode="json")
    try:
        # the same merge agent/api/deployment.py makes when it builds the runtimes
        orchestrator = OrchestratorConfig(**{"every_k_chunks": config.system2.every_k_chunks, **config.orchestrator})
    except ValidationError as exc:
        raise ConfigError(format_validation_error("deployment section 'orchestrator'", exc)) from None
    tree["orchestrator"] = orchestrator.model_dump(mode="json")
    return mask_secrets(tree)


@app.command("show")
def show(
    deployment: str = typer.Argument("local", help="A name under configs/deployments or a YAML path."),
    set_: list[str] = typer.Option([], "--set", help="Override a key: section.key=value (repeatable)."),
) -> None:
    """Print the fully resolved deployment configuration as YAML (secrets masked)."""
    typer.echo(yaml.safe_dump(resolved_config(deployment, set_), sort_keys=False, allow_unicode=True))
