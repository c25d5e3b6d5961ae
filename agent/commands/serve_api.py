"""`hearth serve-api`: the operator / home-automation API with the robots' orchestrators in one process."""

from __future__ import annotations

import typer


def command(
    deployment: str = typer.Option("local", "--deployment", "-d", help="Deployment name or YAML path."),
    set_: list[str] = typer.Option([], "--set", help="Override a key: section.key=value (repeatable)."),
    host: str | None = typer.Option(None, "--host", help="Overrides api.host."),
    port: int | None = typer.Option(None, "--port", help="Overrides api.port."),
    no_robots: bool = typer.Option(False, "--no-robots", help="Serve the store only (tokens, tasks, episodes)."),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        envvar="HEARTH_DATABASE_URL",
        help="Overrides api.database_url: sqlite:///path (default) or postgresql+psycopg://user:pass@host/db "
        "(hearth[postgres]; several API processes may share it).",
    ),
) -> None:
    """Build the deployment's robot runtimes, then serve REST under /api/v1 and the live WebSocket."""
    import logging

    import uvicorn

    from agent.api.app import create_app
    from agent.api.deployment import build_runtimes
    from agent.settings import load_deployment

    config = load_deployment(deployment, set_)
    overrides = {"host": host, "port": port, "database_url": database_url}
    api = config.api.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    config = config.model_copy(update={"api": api})
    runtimes, bus = ({}, None) if no_robots else build_runtimes(config)
    app = create_app(config, runtimes=runtimes, bus=bus, manage_runtimes=True)
    logging.getLogger("hearth").info(
        "serving API",
        extra={"host": api.host, "port": api.port, "robots": list(runtimes), "database": _masked(api.database_url)},
    )
    typer.echo(
        f"hearth API on http://{api.host}:{api.port}/api/v1 (docs: /docs) robots: {', '.join(runtimes) or 'none'}"
    )
    uvicorn.run(app, host=api.host, port=api.port, log_level="warning", ws="websockets-sansio", lifespan="on")


def _masked(url: str) -> str:
    """The database URL without its password, for logs."""
    import sqlalchemy as sa

    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable database URL>"
