"""Client commands: ``stead schema``, ``plan``, ``apply``, ``export`` and ``import``
(``stead login`` is :mod:`stead.cli.login`).

They talk to a running server through the SDK; where they find it is :mod:`stead.cli.config`.
Exit codes: ``plan`` 0 when nothing would change, 2 when something would (like ``terraform
plan -detailed-exitcode``), 1 on an error; ``apply`` 0 when done, 1 on an error, 130 when
interrupted (run it again to finish).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from stead.cli.config import ConfigError, resolve

# The declarative engine and the SDK (pydantic, httpx, YAML) load only when a command runs, so
# `stead --help` stays fast.
if TYPE_CHECKING:
    from stead.declarative.plan import Change, Plan
    from stead.declarative.spec import StateFile
    from stead.document import State
    from stead.sdk import Client

Url = Annotated[
    str | None,
    typer.Option("--url", envvar="STEAD_URL", help="server base URL", show_default=False),
]
ClientId = Annotated[
    str | None,
    typer.Option("--client-id", envvar="STEAD_CLIENT_ID", help="API client id", show_default=False),
]
ClientSecret = Annotated[
    str | None,
    typer.Option(
        "--client-secret",
        envvar="STEAD_CLIENT_SECRET",
        help="API client secret",
        show_default=False,
    ),
]
Profile = Annotated[
    str, typer.Option("--profile", envvar="STEAD_PROFILE", help="profile of the config file")
]
Files = Annotated[
    list[Path],
    typer.Option("--file", "-f", help="declarative YAML file (repeat for several)"),
]
Prune = Annotated[
    bool,
    typer.Option("--prune", help="delete what the listed projects hold that the file does not"),
]
Variables = Annotated[
    list[str],
    typer.Option(
        "--var",
        help="let the file use ${NAME}: NAME (from the environment) or NAME=VALUE; "
        "STEAD_VAR_NAME in the environment counts as --var NAME=its value (repeat for several)",
        show_default=False,
    ),
]
WriteSecrets = Annotated[
    bool,
    typer.Option(
        "--write-secrets",
        help="send secret values again (they cannot be read back to compare)",
    ),
]


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def _client(
    url: str | None, client_id: str | None, secret: str | None, profile: str
) -> Iterator[Client]:
    """A client for the resolved configuration (API client credentials, or a person's stored
    login: :func:`stead.cli.login.user_client`); configuration and API errors end the command
    with exit code 1 and a message (violations included)."""
    from stead.cli.login import describe, forget_login, user_client
    from stead.sdk import ApiError, Client, SteadError

    try:
        config = resolve(url=url, client_id=client_id, client_secret=secret, profile=profile)
    except ConfigError as exc:
        _fail(str(exc))
    made: Client | None = None
    try:
        if config.refresh_token is not None:
            made = user_client(config, profile)
        else:
            made = Client(config.url, config.client_id, config.client_secret)
        with made as client:
            yield client
    except ApiError as exc:
        if exc.title == "invalid_grant" and config.refresh_token is not None:
            forget_login(profile, made.refresh_token if made else None)
        _fail(describe(exc))
    except SteadError as exc:
        _fail(str(exc))


def _load(files: list[Path], variables: list[str]) -> StateFile:
    from stead.declarative import spec as spec_module

    if not files:
        _fail("give the file to read with -f FILE")
    try:
        given = spec_module.file_variables(os.environ, variables)
    except spec_module.SpecError as exc:
        _fail("\n  ".join(exc.problems))
    try:
        return spec_module.load(files, given)
    except spec_module.SpecError as exc:
        _fail("the file is invalid:\n  " + "\n  ".join(exc.problems))


def _plan(
    client: Client, spec: StateFile, prune: bool, write_secrets: bool, *, show: bool = True
) -> tuple[Plan, State]:
    from stead.declarative.plan import make_plan, render
    from stead.declarative.state import read_state

    state = read_state(client, names=[p.name for p in spec.projects])
    plan = make_plan(spec, state, prune=prune, write_secrets=write_secrets)
    if show:
        for line in render(plan):
            typer.echo(line)
    if plan.errors and show:
        _fail("the file asks for what the API cannot do:\n  " + "\n  ".join(plan.errors))
    return plan, state


def _sha256(path: Path) -> str:
    import hashlib

    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        _fail(f"{path}: {exc}")


def _saved_plan(
    plan: Plan, state: State, files: list[Path], prune: bool, write_secrets: bool
) -> dict[str, Any]:
    """The ``--out`` document: the plan's JSON form plus what ``stead apply PLAN`` needs to
    make the same plan again (the files and their digests, the options)."""
    from stead.declarative.plan import plan_document, state_digest

    return {
        **plan_document(plan, digest=state_digest(state)),
        "files": [{"path": str(f.resolve()), "digest": _sha256(f)} for f in files],
        "options": {"prune": prune, "writeSecrets": write_secrets},
    }


def schema() -> None:
    """Print the JSON Schema of the declarative file (for editors)."""
    from stead.declarative import spec as spec_module

    typer.echo(spec_module.schema_text())


def plan(
    files: Files = [],  # noqa: B006 - typer reads the default, never mutates it
    prune: Prune = False,
    write_secrets: WriteSecrets = False,
    variables: Variables = [],  # noqa: B006 - typer reads the default, never mutates it
    as_json: Annotated[
        bool, typer.Option("--json", help="print the plan as JSON (docs/declarative.md)")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="save the plan here, for `stead apply PLAN`", show_default=False
        ),
    ] = None,
    url: Url = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = "default",
) -> None:
    """Show what `stead apply` would change: exit 0 if nothing, 2 if something, 1 on error."""
    spec = _load(files, variables)
    with _client(url, client_id, client_secret, profile) as client:
        result, state = _plan(client, spec, prune, write_secrets, show=not as_json)
    if as_json or out is not None:
        saved = _saved_plan(result, state, files, prune, write_secrets)
        text = json.dumps(saved, indent=2, ensure_ascii=False) + "\n"
        if as_json:
            typer.echo(text, nl=False)
        if out is not None and not result.errors:
            out.write_text(text, encoding="utf-8")
            typer.echo(f"plan saved to {out}: apply it with `stead apply {out}`", err=True)
    if result.errors:
        raise typer.Exit(1)
    raise typer.Exit(2 if result.pending else 0)


def _read_saved(path: Path) -> dict[str, Any]:
    from stead.declarative.plan import PLAN_FORMAT

    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        _fail(
            f"{path} is not a saved plan (of `stead plan --out`): {exc}; "
            f"to apply a file, run `stead apply -f {path}`"
        )
    if not isinstance(saved, dict) or saved.get("formatVersion") != PLAN_FORMAT:
        _fail(f"{path}: not a saved plan of this version of stead (formatVersion {PLAN_FORMAT})")
    try:
        files = [Path(str(f["path"])) for f in saved["files"]]
        for f in saved["files"]:
            if _sha256(Path(str(f["path"]))) != f["digest"]:
                _fail(f"{f['path']} changed since the plan was made: run `stead plan` again")
        options = saved["options"]
        saved["_files"], saved["_prune"] = files, bool(options["prune"])
        saved["_write_secrets"] = bool(options["writeSecrets"])
    except (KeyError, TypeError) as exc:
        _fail(f"{path}: not a saved plan: missing {exc}")
    return saved


def _check_saved(saved: dict[str, Any], result: Plan, state: State) -> None:
    """Refuse (exit 1) unless planning again gives the saved plan from the same state."""
    from stead.declarative.plan import plan_document, state_digest

    if state_digest(state) != saved.get("stateDigest"):
        _fail(
            "the server changed since the plan was made (its state digest differs): "
            "nothing was applied; run `stead plan` again"
        )
    again = json.loads(json.dumps(plan_document(result, digest="")["changes"]))
    if again != saved.get("changes"):
        _fail(
            "the file and variables no longer give the saved plan: nothing was applied; "
            "run `stead plan` again"
        )


def apply(
    plan_file: Annotated[
        Path | None,
        typer.Argument(
            help="a plan saved by `stead plan --out`: apply exactly it", show_default=False
        ),
    ] = None,
    files: Files = [],  # noqa: B006 - typer reads the default, never mutates it
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="apply without asking")
    ] = False,
    prune: Prune = False,
    write_secrets: WriteSecrets = False,
    variables: Variables = [],  # noqa: B006 - typer reads the default, never mutates it
    parallelism: Annotated[
        int, typer.Option("--parallelism", min=1, max=64, help="projects changed at once")
    ] = 10,
    plain: Annotated[
        bool,
        typer.Option(
            "--plain", help="one line per change instead of a progress bar (when not a terminal)"
        ),
    ] = False,
    url: Url = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = "default",
) -> None:
    """Make the server match the file, or apply a saved plan.

    Creates and updates in dependency order within each project, several projects at once;
    deletes only with --prune. Safe to run again after a failure or Ctrl-C. A saved plan is
    applied without asking, and refused if the server or the file changed since.
    """
    from stead.declarative.apply import apply_plan
    from stead.declarative.plan import context_for
    from stead.sdk import SteadError

    saved = None
    if plan_file is not None:
        if files:
            _fail("give a saved plan or -f FILE, not both")
        saved = _read_saved(plan_file)
        files, prune, write_secrets = saved["_files"], saved["_prune"], saved["_write_secrets"]
        auto_approve = True
    spec = _load(files, variables)
    with _client(url, client_id, client_secret, profile) as client:
        result, state = _plan(client, spec, prune, write_secrets)
        if saved is not None:
            _check_saved(saved, result, state)
        pending = result.pending
        if not pending:
            typer.echo("Nothing to do.")
            return
        if not auto_approve:
            if not sys.stdin.isatty():
                _fail("not asking on a non-interactive input: pass --auto-approve")
            if not typer.confirm("Apply these changes?", default=False):
                _fail("cancelled, nothing changed")

        done = 0
        try:
            with _progress(len(pending), plain or not sys.stdout.isatty()) as progress:
                done = apply_plan(
                    result,
                    context_for(client, state),
                    progress=progress,
                    parallelism=parallelism,
                )
        except KeyboardInterrupt:
            typer.echo(
                "interrupted: run `stead apply` again to finish (`stead plan` shows what is left)",
                err=True,
            )
            raise typer.Exit(130) from None
        except SteadError:
            typer.echo(
                "apply stopped: the changes listed as done are made; fix the cause and "
                "run `stead apply` again",
                err=True,
            )
            raise
        typer.echo(f"Apply complete: {done} change(s), {client.requests_sent} request(s).")


@contextmanager
def _progress(total: int, plain: bool) -> Iterator[Callable[[int, int, Change], None]]:
    """A progress callback: a rich progress bar on a terminal, else one line per change made
    (``[done/total] action label``, for CI logs)."""
    if plain:
        lock = threading.Lock()

        def line(done: int, total: int, change: Change) -> None:
            with lock:
                typer.echo(f"[{done}/{total}] {change.action} {change.label}")

        yield line
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}", style="dim"),
    ) as bar:
        task = bar.add_task("applying", total=total, last="")

        def advance(done: int, total: int, change: Change) -> None:
            bar.update(task, completed=done, last=f"{change.action} {change.label}")

        yield advance


def export(
    project: Annotated[
        list[str], typer.Option("--project", help="project id (repeat for several)")
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    all_projects: Annotated[bool, typer.Option("--all", help="every visible project")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here instead of stdout")
    ] = None,
    url: Url = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = "default",
) -> None:
    """Write the declarative file for what exists: applying it changes nothing."""
    from stead.declarative.state import read_state
    from stead.document import dump, export_document

    if bool(project) == all_projects:
        _fail("give --project ID (one or more) or --all")
    with _client(url, client_id, client_secret, profile) as client:
        state = read_state(client, project_ids=project or None)
    text = dump(export_document(state))
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {len(state.projects)} project(s) to {output}", err=True)


def import_(
    files: Annotated[
        Path, typer.Option("--file", "-f", help="declarative YAML file to add to (made if missing)")
    ],
    project: Annotated[
        list[str],
        typer.Option("--project", help="project name (repeat; default: those the file lists)"),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    url: Url = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = "default",
) -> None:
    """Write into the file what the server holds and the file lacks (objects made by hand).

    The file's own entries are kept as written; the projects named (or those the file lists)
    get their missing connections, secret references, secrets, environments, access, members
    and repository, and missing projects are added whole.
    """
    import yaml

    from stead.declarative.imports import import_into
    from stead.declarative.spec import SAFE_LOADER
    from stead.declarative.state import read_state
    from stead.wire import name_key

    path = files
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        document = yaml.load(text, Loader=SAFE_LOADER) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        _fail(f"{path}: {exc}")
    listed = [str(p.get("name")) for p in document.get("projects") or [] if isinstance(p, dict)]
    names = project or listed
    if not names:
        _fail("give --project NAME (one or more), or a file that lists projects")
    with _client(url, client_id, client_secret, profile) as client:
        state = read_state(client, names=names)
    missing = sorted({n for n in project if name_key(n) not in state.projects})
    if missing:
        _fail(f"no visible project named {missing[0]!r}")
    try:
        merged, added = import_into(document, state)
    except ValueError as exc:
        _fail(f"{path}: {exc}")
    if not added:
        typer.echo("Nothing to import: the file holds everything.")
        return
    path.write_text(
        yaml.safe_dump(merged, sort_keys=False, allow_unicode=True, width=100), encoding="utf-8"
    )
    for address in added:
        typer.echo(f"imported {address}")
    typer.echo(f"wrote {path}: {len(added)} object(s) imported; `stead plan` shows no change")


def register(app: typer.Typer) -> None:
    """Add the client commands to the ``stead`` command line."""
    for command in (schema, plan, apply, export):
        app.command()(command)
    app.command(name="import")(import_)
