"""``stead env``: commands on one environment of a project, through the SDK."""

from __future__ import annotations

import io
import os
import stat
import tempfile
import uuid
from pathlib import Path
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


def merge_profiles(existing: str, addition: str) -> str:
    """``existing`` dbt ``profiles.yml`` text with the targets of ``addition`` (a profile as
    ``GET .../profile?format=dbt`` answers it) added, or put in place of the targets of the same
    name; every other profile and target, and the comments, order and quoting of the file, are
    kept. A profile that is new takes ``addition``'s default ``target``; an existing one keeps
    its own. YAML round-trip by ruamel.yaml; ``addition``'s header comment is not copied.

    Raises:
        ValueError: ``existing`` is not YAML, or not a mapping of profiles (named in the
            message, never quoted from the file).
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    try:
        document = yaml.load(existing)
    except YAMLError as exc:
        raise ValueError(f"is not valid YAML ({type(exc).__name__})") from None
    prefix = ""
    if document is None:  # empty, or comments only: keep them above the new profile
        prefix = existing if not existing or existing.endswith("\n") else existing + "\n"
        document = CommentedMap()
    if not isinstance(document, dict):
        raise ValueError("is not a mapping of dbt profiles")
    for name, profile in yaml.load(addition).items():
        current = document.get(name)
        if not isinstance(current, dict):
            document[name] = profile
            continue
        outputs = current.get("outputs")
        if not isinstance(outputs, dict):
            outputs = current["outputs"] = CommentedMap()
        for target, fields in profile["outputs"].items():
            outputs[target] = fields
    out = io.StringIO()
    yaml.dump(document, out)
    return prefix + out.getvalue()


def _write_merged(path: Path, text: str) -> list[str]:
    """Merge the profile ``text`` into the file at ``path`` (created 0600 if missing) through a
    temporary file in the same directory and an atomic rename, keeping the file's mode; return
    the header lines of ``text`` (the environment variables to set). Ends the command with exit
    code 1 when the file cannot be read or merged."""
    path = path.expanduser()
    try:
        existing = path.read_text()
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        existing, mode = "", 0o600
    except OSError as exc:
        _fail(f"{path}: cannot be read ({exc.strerror})")
    try:
        merged = merge_profiles(existing, text)
    except ValueError as exc:
        _fail(f"{path} {exc}; nothing was written")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(merged)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return [line for line in text.splitlines() if line.startswith("#")]


@env_app.command("profile")
def env_profile(
    project_id: ProjectId,
    environment: EnvironmentName,
    profile_format: Annotated[
        str, typer.Option("--format", help="profile format; dbt: a dbt profiles.yml")
    ] = "dbt",
    into: Annotated[
        Path | None,
        typer.Option(
            "--into",
            metavar="FILE",
            help="merge into FILE (e.g. ~/.dbt/profiles.yml) instead of printing: adds or "
            "replaces this environment's target, keeps every other profile, target and comment",
        ),
    ] = None,
    url: Url = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = "default",
) -> None:
    """Print the environment as a connection profile: with --format dbt, a dbt profiles.yml.

    Secrets are never in it: each is an env_var() reference, listed in the profile's header
    (printed on standard error with --into).
    """
    with _client(url, client_id, client_secret, profile) as client:
        text = client.environments.profile(
            _project_id(client, project_id), environment, profile_format=profile_format
        )
    if into is None:
        typer.echo(text, nl=False)
        return
    header = _write_merged(into, text)
    typer.echo("\n".join([f"# merged into {into}", *header[1:]]), err=True)


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
