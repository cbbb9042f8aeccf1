"""The ``stead`` command line (Typer).

Server-side commands (``serve``, ``db``, ``admin``) work on the database directly; every other
command talks to a running server over HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

# Click's plain help and error output rather than rich's panels, whose import is a large share
# of every command's start-up (docs/decisions.md, figures there). TYPER_USE_RICH=1 brings the
# panels back. Set before Typer is first imported.
os.environ.setdefault("TYPER_USE_RICH", "0")

import typer  # noqa: E402

from stead.cli.apply import register as register_client_commands  # noqa: E402
from stead.cli.audit import audit  # noqa: E402
from stead.cli.backup import backup, restore  # noqa: E402
from stead.cli.env import env_app  # noqa: E402
from stead.cli.login import login, logout, whoami  # noqa: E402

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterator

    from pydantic import ValidationError
    from rich.console import Console
    from sqlalchemy import Engine

    from stead.demo import Provisioned
    from stead.settings import Settings

app = typer.Typer(
    help="Stead: a self-hosted control plane that provisions data projects.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
admin_app = typer.Typer(help="Administration on the server's own database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
app.add_typer(env_app, name="env")


def _version(value: bool) -> None:
    if value:
        from stead import __version__

        typer.echo(f"stead {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Stead: a self-hosted control plane that provisions data projects."""


def _fail(message: object) -> typer.Exit:
    """Print ``error: message`` on stderr; the exit (status 2) to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _invalid_settings(exc: ValidationError) -> str:
    """One line per refused setting, ``STEAD_<NAME>: reason``, never its value (it may be a
    secret): pydantic's own text repeats the input."""
    lines = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        field = "_".join(str(part) for part in error["loc"])
        named = not field or message.startswith("STEAD_") or "STEAD_" in message
        lines.append(message if named else f"STEAD_{field.upper()}: {message}")
    return "; ".join(lines)


def _unreachable(exc: Exception) -> str:
    """One line for a database that did not answer: the driver's first line (it names the host,
    never the password)."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"cannot use the database: {reason[0] if reason else type(exc).__name__}"


@contextlib.contextmanager
def _admin_database(settings: Settings) -> Iterator[Engine]:
    """The configured database, migrated to this version's schema, for an admin command; the
    engine is disposed of on exit.

    Raises:
        typer.Exit: status 2 after one line on stderr, for a schema newer than this version
            knows or a database that does not answer (the same messages as ``serve``).
    """
    from sqlalchemy.exc import OperationalError

    from stead.db import make_engine
    from stead.migrations import SchemaError, upgrade

    url = settings.effective_database_url
    try:
        upgrade(url)
    except SchemaError as exc:
        raise _fail(exc) from None
    except OperationalError as exc:
        raise _fail(_unreachable(exc)) from None
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _exit_cleanly(_signum: int, _frame: object) -> None:
    """SIGTERM after uvicorn's graceful shutdown (which re-raises the signal it caught): exit 0."""
    raise SystemExit(0)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8080,
    workers: Annotated[int, typer.Option(help="worker processes")] = 1,
    migrate: Annotated[
        bool,
        typer.Option(
            "--migrate/--no-migrate",
            help="apply pending migrations first (--no-migrate: refuse to start unless the "
            "database is already at this version's schema; see `stead db upgrade`)",
        ),
    ] = True,
) -> None:
    """Check the schema and the keys, apply migrations, then serve the API with uvicorn.

    A schema this version cannot use, or an unusable or wrong signing key or master key, is one
    line on stderr and exit status 2 (docs/operations.md). SIGTERM stops accepting connections,
    lets the requests in flight finish (up to STEAD_SHUTDOWN_TIMEOUT_SECONDS) and exits 0.
    """
    import shutil
    import tempfile

    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from stead.settings import get_settings

    try:
        get_settings()
    except SettingsError as exc:
        raise _fail(exc) from None
    except ValidationError as exc:
        raise _fail(_invalid_settings(exc)) from None
    # Metrics of every worker process, in files of a private directory (prometheus_client's
    # multiprocess mode); set before prometheus_client is first imported, here or in a worker.
    metrics_dir = tempfile.mkdtemp(prefix="stead-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    get_settings.cache_clear()
    settings = get_settings()
    try:
        _serve(settings, host=host, port=port, workers=workers, migrate=migrate)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve(settings: Settings, *, host: str, port: int, workers: int, migrate: bool) -> None:
    """:func:`serve` once its settings are read."""
    import ipaddress
    import logging
    import signal

    import uvicorn
    from sqlalchemy.exc import OperationalError

    from stead import __version__
    from stead.db import make_engine
    from stead.identity.keys import SigningKeyError, load_signing_key
    from stead.keycheck import KeyCheckError, verify_keys
    from stead.logs import configure_logging
    from stead.migrations import SchemaError, check_schema, upgrade
    from stead.pipeline.server import uvicorn_options
    from stead.secrets.store import MasterKeyError, load_keyring

    configure_logging(settings.log_level)
    log = logging.getLogger("stead")
    # SIGTERM from here on ends with status 0: during start-up at once (the migration's
    # transaction rolls back), while serving after uvicorn's graceful shutdown.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    url = settings.effective_database_url
    try:
        if settings.environment == "production":
            # Keys missing or weak by configuration alone: refused before the database is
            # touched (production never generates a key file).
            load_signing_key(settings)
            load_keyring(settings)
        if migrate:
            applied = upgrade(url)
            if applied:
                log.info("applied migrations %s", ", ".join(applied))
        else:
            check_schema(url)
        engine = make_engine(url)
        try:
            verify_keys(settings, engine)
        finally:
            engine.dispose()
    except (SchemaError, SigningKeyError, MasterKeyError, KeyCheckError) as exc:
        raise _fail(exc) from None
    except OperationalError as exc:
        raise _fail(_unreachable(exc)) from None
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and settings.environment != "production":
        log.warning(
            "serving on %s, beyond this machine, with STEAD_ENVIRONMENT=development: "
            "set STEAD_ENVIRONMENT=production (docs/operations.md, Keys)",
            host,
        )
    if settings.sso_enabled:
        from stead.identity.sso import issuer_refused

        refused = issuer_refused(settings)
        if refused:
            log.warning("single sign-on will not work: %s", refused)
    log.info(
        "stead %s starting on http://%s:%d with %d worker(s), environment %s",
        __version__,
        host,
        port,
        workers,
        settings.environment,
    )
    uvicorn.run(
        "stead.app:server_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        **uvicorn_options(settings),
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to the configured database and say which (servers may keep
    running; they wait on the migration lock only when they start)."""
    from sqlalchemy.exc import OperationalError

    from stead import __version__
    from stead.migrations import SchemaError, head, upgrade
    from stead.settings import get_settings

    try:
        applied = upgrade(get_settings().effective_database_url)
    except SchemaError as exc:
        raise _fail(exc) from None
    except OperationalError as exc:
        raise _fail(_unreachable(exc)) from None
    if applied:
        typer.echo(f"applied {len(applied)} migration(s): {', '.join(applied)}")
        typer.echo(f"database is at {head()} (Stead {__version__})")
    else:
        typer.echo(f"already at head: {head()} (Stead {__version__}); nothing to apply")


@admin_app.command("create-client")
def create_client(
    name: Annotated[str, typer.Option(help="a name for the client")],
    role: Annotated[str, typer.Option(help="SUPER_ADMIN, ADMIN or MEMBER")] = "MEMBER",
    as_json: Annotated[
        bool, typer.Option("--json", help='print {"clientId", "clientSecret"}')
    ] = False,
) -> None:
    """Create an API client and print its id and secret (the secret is shown only now)."""
    from stead.db import make_sessionmaker, session_scope
    from stead.errors import AppError
    from stead.identity.service import create_api_client
    from stead.settings import get_settings

    with _admin_database(get_settings()) as engine:
        try:
            with session_scope(make_sessionmaker(engine), write=True) as session:
                client, secret = create_api_client(session, name=name, role=role.upper())
                client_id = client.client_id
        except AppError as exc:
            raise _fail(exc.detail) from None
    if as_json:
        typer.echo(json.dumps({"clientId": client_id, "clientSecret": secret}))
    else:
        typer.echo(
            f"client id:     {client_id}\nclient secret: {secret}\n(the secret is shown only once)"
        )


@admin_app.command("rotate-master-key")
def rotate_master_key() -> None:
    """Re-wrap every hosted secret's data key under a new master key, in one transaction.

    With the key file (<data_dir>/master.key) a new key is generated and the file rewritten;
    with STEAD_MASTER_KEY, set the new key there and the old one in STEAD_PREVIOUS_MASTER_KEYS
    first. Servers keep reading secrets throughout.
    """
    from stead.db import make_sessionmaker
    from stead.secrets.store import MasterKeyError, SecretUnreadable
    from stead.secrets.store import rotate_master_key as rotate
    from stead.settings import get_settings

    settings = get_settings()
    with _admin_database(settings) as engine:
        try:
            rotation = rotate(settings, make_sessionmaker(engine))
        except (MasterKeyError, SecretUnreadable) as exc:
            raise _fail(exc) from None
    typer.echo(
        f"re-wrapped {rotation.rewrapped} data keys; current master key id {rotation.key_id}"
    )


@admin_app.command("replace-signing-key")
def replace_signing_key() -> None:
    """Make the configured signing key the database's own, after it was changed on purpose
    (STEAD_SIGNING_KEY, or a new <data_dir>/signing.key: a missing one is generated outside
    production). Every access token issued under the previous key stops working."""
    from stead.identity.keys import SigningKeyError
    from stead.keycheck import replace_signing_key as replace
    from stead.settings import get_settings

    settings = get_settings()
    with _admin_database(settings) as engine:
        try:
            replace(settings, engine)
        except SigningKeyError as exc:
            raise _fail(exc) from None
    typer.echo("the configured signing key is now the database's; earlier tokens are refused")


@admin_app.command("create-user")
def create_user_command(
    email: Annotated[str, typer.Option(help="the user's email (their login)")],
    role: Annotated[str, typer.Option(help="SUPER_ADMIN, ADMIN or MEMBER")] = "MEMBER",
    display_name: Annotated[
        str | None, typer.Option(help="default: the email's local part")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Create a user who logs in with email and password (the way to a first Super Admin user;
    everyone else joins by invitation)."""
    import sys

    from stead.db import make_sessionmaker, session_scope
    from stead.errors import AppError
    from stead.identity.schemas import PASSWORD_MAX, PASSWORD_MIN, check_email
    from stead.identity.service import create_user
    from stead.settings import get_settings

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        check_email(email)
    except ValueError as exc:
        typer.echo(f"error: email {exc}", err=True)
        raise typer.Exit(2) from None
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        typer.echo(
            f"error: the password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters", err=True
        )
        raise typer.Exit(2)
    with _admin_database(get_settings()) as engine:
        try:
            with session_scope(make_sessionmaker(engine), write=True) as session:
                user = create_user(
                    session,
                    email=email,
                    password=password,
                    display_name=display_name,
                    role=role.upper(),
                )
                user_id = user.id
        except AppError as exc:
            raise _fail(exc.detail) from None
    typer.echo(f"user {user_id} ({email}, {role.upper()}) created")


@admin_app.command("scim-token")
def scim_token_command(
    name: Annotated[str, typer.Option(help="the identity provider it is for, e.g. okta")],
) -> None:
    """Make a SCIM token for an identity provider and print it (shown only now; docs/scim.md).
    List and revoke tokens on the console's SCIM tokens page (/console/scim-tokens) or at
    /v1/scim-tokens."""
    from stead.db import make_sessionmaker, session_scope
    from stead.errors import AppError
    from stead.identity.actor import Actor
    from stead.identity.service import get_account
    from stead.scim.tokens import create_token
    from stead.settings import get_settings

    settings = get_settings()
    with _admin_database(settings) as engine:
        try:
            with session_scope(make_sessionmaker(engine), write=True) as session:
                account = get_account(session).id
                actor = Actor(
                    type="cli",
                    id="stead-admin",
                    name="stead admin",
                    role="SUPER_ADMIN",
                    account_id=account,
                )
                token, value = create_token(session, actor=actor, name=name)
                token_id = token.id
        except AppError as exc:
            raise _fail(exc.detail) from None
    typer.echo(
        f"SCIM token {token_id} ({name}):\n{value}\n(shown only once; the identity provider "
        f"sends it as Authorization: Bearer <token> to {settings.public_url.rstrip('/')}/scim/v2)"
    )


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _print_provisioned(console: Console, results: list[Provisioned]) -> None:
    """The demo's summary: one block per provisioned project."""
    console.print("\n[bold]Provisioned[/]")
    for done in results:
        console.print(
            f"  {done.warehouse:9} project {done.project_name} ({done.project_id})\n"
            f"            agent {done.agent_id}, connection {done.connection}, "
            f"secret reference {done.secret_reference}, environment {done.environment}\n"
            f"            repository {done.repository.get('repositoryName')} "
            f"(default branch {done.repository.get('defaultBranch')})"
        )


def _client_notice(client_id: str, client_secret: str, base_url: str, data_dir: Path) -> str:
    """What ``stead demo --serve`` prints so the served API can be used: the demo client's
    credentials (shown only then), a token command and how to make another client."""
    return (
        f"\nSUPER_ADMIN API client (the secret is shown only now):\n"
        f"  client id:     {client_id}\n  client secret: {client_secret}\n"
        f"token: curl -s -d grant_type=client_credentials -d client_id={client_id} "
        f"-d client_secret={client_secret} {base_url}/oauth/dpc/token\n"
        f"another client: STEAD_DATA_DIR={data_dir} stead admin create-client --name NAME "
        f"--role SUPER_ADMIN"
    )


@app.command()
def demo(
    data_dir: Annotated[
        Path | None, typer.Option(help="data directory (default: a fresh one)")
    ] = None,
    port: Annotated[int, typer.Option(help="TCP port (default: a free one)")] = 0,
    serve: Annotated[bool, typer.Option("--serve", help="keep serving after the demo")] = False,
) -> None:
    """Run Stead on SQLite and provision a Redshift and a Snowflake project over HTTP.

    A fresh data directory (no --data-dir) is removed at the end unless --serve is given or the
    demo fails; --serve prints the demo API client's id and secret, for /docs and curl, and a
    Super Admin's console login.
    """
    import shutil
    import signal
    import subprocess
    import tempfile

    from rich.console import Console

    from stead.demo import create_super_admin, start_server
    from stead.settings import Settings

    console = Console(highlight=False, soft_wrap=True)
    fresh = data_dir is None
    data_dir = (data_dir or Path(tempfile.mkdtemp(prefix="stead-demo-"))).resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    port = port or _free_port()
    database_url = Settings(data_dir=data_dir, database_url="").effective_database_url
    console.print(f"[bold]Stead demo[/] data directory {data_dir} (SQLite)")
    client_id, client_secret = create_super_admin(database_url)
    console.print(f"created SUPER_ADMIN API client {client_id}")

    def stop(signum: int, frame: object) -> None:
        # SIGTERM (kill, systemd, a container runtime) ends the demo like Ctrl-C, so the
        # server it started is stopped too; Python's default would exit without cleaning up.
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    server = start_server(data_dir, port)
    try:
        ok = _demo_flow(console, server, data_dir, port, client_id, client_secret, serve)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        signal.signal(signal.SIGTERM, previous)
    if not ok:
        raise typer.Exit(1)
    if fresh and not serve:
        shutil.rmtree(data_dir, ignore_errors=True)
        console.print(f"\nremoved the data directory {data_dir} (--data-dir DIR keeps one)")
    else:
        console.print(
            f"\ndata kept in {data_dir}; serve it again with STEAD_DATA_DIR={data_dir} stead serve",
            markup=False,
        )
    console.print("demo complete")


def _demo_flow(
    console: Console,
    server: subprocess.Popen[bytes],
    data_dir: Path,
    port: int,
    client_id: str,
    client_secret: str,
    serve: bool,
) -> bool:
    """The demo's flow against the started ``server``, then, with ``serve``, wait until it
    ends or the demo is interrupted (Ctrl-C, SIGTERM). False when a call of the flow failed."""
    from stead.demo import FlowError, Step, create_console_admin, run_flow
    from stead.settings import Settings

    base_url = f"http://127.0.0.1:{port}"
    console.print(f"stead serve is up at {base_url} (log: {data_dir / 'server.log'})\n")

    def report(step: Step) -> None:
        colour = "green" if step.status < 400 else "red"
        console.print(f"  {step.method:6} {step.path:64} [{colour}]{step.status}[/]")

    try:
        results = run_flow(base_url, client_id, client_secret, data_dir / "git", report=report)
    except FlowError as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        console.print(f"the data directory {data_dir} is kept (see server.log)")
        return False
    _print_provisioned(console, results)
    if serve:
        console.print(_client_notice(client_id, client_secret, base_url, data_dir), markup=False)
        database_url = Settings(data_dir=data_dir, database_url="").effective_database_url
        email, password = create_console_admin(database_url)
        console.print(
            f"\nconsole: {base_url}/console (the password is shown only now)\n"
            f"  email:    {email}\n  password: {password}",
            markup=False,
        )
        console.print(f"\nserving at {base_url}/docs - Ctrl-C to stop")
        with contextlib.suppress(KeyboardInterrupt):
            server.wait()
    return True


app.command()(login)
app.command()(whoami)
app.command()(logout)
register_client_commands(app)
app.command()(audit)
app.command()(backup)
app.command()(restore)

if __name__ == "__main__":
    app()
