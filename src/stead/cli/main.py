"""The ``stead`` command line (Typer).

Server-side commands (``serve``, ``db``, ``admin``) work on the database directly; every other
command talks to a running server over HTTP.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

app = typer.Typer(help="Stead: a self-hosted control plane that provisions data projects.",
                  no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
admin_app = typer.Typer(help="Administration on the server's own database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8080,
    workers: Annotated[int, typer.Option(help="worker processes")] = 1,
) -> None:
    """Apply migrations, then serve the API with uvicorn."""
    import uvicorn

    from stead.migrations import upgrade
    from stead.settings import get_settings

    settings = get_settings()
    upgrade(settings.effective_database_url)
    uvicorn.run("stead.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level=settings.log_level.lower(), access_log=False)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to the configured database."""
    from stead.migrations import upgrade
    from stead.settings import get_settings

    upgrade(get_settings().effective_database_url)
    typer.echo("database is up to date")


@admin_app.command("create-client")
def create_client(
    name: Annotated[str, typer.Option(help="a name for the client")],
    role: Annotated[str, typer.Option(help="SUPER_ADMIN, ADMIN or MEMBER")] = "MEMBER",
    as_json: Annotated[bool, typer.Option("--json", help='print {"clientId", "clientSecret"}')] = False,
) -> None:
    """Create an API client and print its id and secret (the secret is shown only now)."""
    from stead.db import make_engine, make_sessionmaker, session_scope
    from stead.errors import AppError
    from stead.identity.service import create_api_client
    from stead.migrations import upgrade
    from stead.settings import get_settings

    settings = get_settings()
    upgrade(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    try:
        for session in session_scope(make_sessionmaker(engine), write=True):
            client, secret = create_api_client(session, name=name, role=role.upper())
            client_id = client.client_id
    except AppError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps({"clientId": client_id, "clientSecret": secret}))
    else:
        typer.echo(f"client id:     {client_id}\nclient secret: {secret}\n"
                   "(the secret is shown only once)")


if __name__ == "__main__":
    app()
