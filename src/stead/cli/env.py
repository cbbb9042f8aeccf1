"""``stead env``: commands on one environment of a project, through the SDK."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated

import typer

from stead.cli.apply import ClientId, ClientSecret, Profile, Url, _client, _fail

if TYPE_CHECKING:
    from stead.sdk import Client

env_app = typer.Typer(help="Work with a project's environments.", no_args_is_help=True)

ProjectId = Annotated[
    str, typer.Argument(metavar="PROJECT", help="project id, or project name (any case)")
]
EnvironmentName = Annotated[str, typer.Argument(metavar="ENV", help="environment name")]


def _project_id(client: Client, project: str) -> str:
    """``project`` when it is a UUID, else the id of the project named ``project`` (names compare
    as the API compares them: case-insensitive, Unicode NFC). A name no project has ends the
    command with exit code 1."""
    try:
        uuid.UUID(project)
    except ValueError:
        from stead.wire import name_key

        key = name_key(project)
        for found in client.projects.list():
            if name_key(found.name) == key:
                return found.id
        _fail(f"no such project: {project!r} (give a project id or name)")
    return project


@env_app.command("profile")
def env_profile(
    project_id: ProjectId,
    environment: EnvironmentName,
    profile_format: Annotated[
        str, typer.Option("--format", help="profile format; dbt: a dbt profiles.yml")
    ] = "dbt",
    url: Url = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = "default",
) -> None:
    """Print the environment as a connection profile: with --format dbt, a dbt profiles.yml.

    Secrets are never in it: each is an env_var() reference, listed in the profile's header.
    """
    with _client(url, client_id, client_secret, profile) as client:
        text = client.environments.profile(
            _project_id(client, project_id), environment, profile_format=profile_format
        )
    typer.echo(text, nl=False)


@env_app.command("test")
def env_test(
    project_id: ProjectId,
    environment: EnvironmentName,
    as_json: Annotated[bool, typer.Option("--json", help="print the answer as JSON")] = False,
    url: Url = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = "default",
) -> None:
    """Log in to the environment's warehouse with its credentials and run a trivial query.

    Exit code 0 when the warehouse accepted, 3 when it refused or could not be reached (the
    warehouse's error code is printed), 1 when the test could not run.
    """
    with _client(url, client_id, client_secret, profile) as client:
        result = client.environments.test_connection(_project_id(client, project_id), environment)
    if as_json:
        typer.echo(result.model_dump_json(by_alias=True))
    elif result.error is None:
        typer.echo(f"ok: {result.server_version} in {result.latency_ms} ms")
    else:
        typer.echo(f"failed: {result.error.code} {result.error.message}", err=True)
    if not result.ok:
        raise typer.Exit(3)
