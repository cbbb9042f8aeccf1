"""``stead env``: commands on one environment of a project, through the SDK."""

from __future__ import annotations

from typing import Annotated

import typer

from stead.cli.apply import ClientId, ClientSecret, Profile, Url, _client

env_app = typer.Typer(help="Work with a project's environments.", no_args_is_help=True)

ProjectId = Annotated[str, typer.Argument(metavar="PROJECT", help="project id")]
EnvironmentName = Annotated[str, typer.Argument(metavar="ENV", help="environment name")]


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
        text = client.environments.profile(project_id, environment, profile_format=profile_format)
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
        result = client.environments.test_connection(project_id, environment)
    if as_json:
        typer.echo(result.model_dump_json(by_alias=True))
    elif result.error is None:
        typer.echo(f"ok: {result.server_version} in {result.latency_ms} ms")
    else:
        typer.echo(f"failed: {result.error.code} {result.error.message}", err=True)
    if not result.ok:
        raise typer.Exit(3)
