"""`hearth tokens create|list|revoke`: manage API tokens directly in the store (works while the API is down)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)

ROLES = ("viewer", "operator", "automation", "admin")


def _store(deployment: str, database_url: str | None, set_: list[str]):
    from agent.settings import load_deployment
    from agent.store import Store

    url = database_url or load_deployment(deployment, set_).api.database_url
    return Store(url)


_deployment = typer.Option("local", "--deployment", "-d", help="Deployment name or YAML path (for the database URL).")
_database = typer.Option(None, "--database-url", help="SQLAlchemy URL; overrides the deployment's api.database_url.")
_set = typer.Option([], "--set", help="Override a deployment key: section.key=value (repeatable).")


@app.command("create")
def create(
    role: str = typer.Option(..., "--role", help="viewer, operator, automation or admin."),
    name: str = typer.Option("", "--name", help="A label to recognise the token by (default: the role)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the secret (for scripts)."),
    deployment: str = _deployment,
    database_url: str | None = _database,
    set_: list[str] = _set,
) -> None:
    """Create a token and print its secret once (only a hash is stored)."""
    if role not in ROLES:
        raise typer.BadParameter(f"unknown role {role!r}; choose one of {', '.join(ROLES)}", param_hint="--role")
    store = _store(deployment, database_url, set_)
    info, secret = store.create_token(name or role, role)
    store.close()
    if quiet:
        typer.echo(secret)
    else:
        typer.echo(f"id:    {info.id}\nrole:  {info.role}\nname:  {info.name}\ntoken: {secret}")
        typer.echo("Store the token now: it cannot be shown again.", err=True)


@app.command("list")
def list_(
    all_: bool = typer.Option(False, "--all", help="Include revoked tokens."),
    deployment: str = _deployment,
    database_url: str | None = _database,
    set_: list[str] = _set,
) -> None:
    """List tokens (id, role, name, prefix, last use); secrets are never shown."""
    store = _store(deployment, database_url, set_)
    tokens = store.list_tokens(include_revoked=all_)
    store.close()
    typer.echo(f"{'ID':<14}{'ROLE':<12}{'PREFIX':<16}{'STATUS':<9}NAME")
    for token in tokens:
        status = "revoked" if token.revoked_at else "active"
        typer.echo(f"{token.id:<14}{token.role:<12}{token.prefix:<16}{status:<9}{token.name}")


@app.command("revoke")
def revoke(
    token_id: str = typer.Argument(..., help="The token's id (from `hearth tokens list`)."),
    deployment: str = _deployment,
    database_url: str | None = _database,
    set_: list[str] = _set,
) -> None:
    """Revoke a token; requests using it fail with 401 at once."""
    from agent.store import NotFound

    store = _store(deployment, database_url, set_)
    try:
        info = store.revoke_token(token_id)
    except NotFound:
        typer.echo(f"error: no token with id {token_id!r}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    typer.echo(f"revoked {info.id} ({info.role}, {info.name})")
