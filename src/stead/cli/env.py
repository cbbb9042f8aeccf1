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
