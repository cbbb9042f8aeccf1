"""Connection tests: open a real session to the warehouse with an environment's credentials and
run a trivial query (contract section 8).

The credentials are resolved first (:func:`resolve_target`, inside the request's transaction),
then the transaction ends and the request steps out of admission control while the vendor's
driver runs (:func:`run`, in a thread of its own under a hard deadline): a slow or silent
warehouse never holds a database connection, SQLite's write lock or an admission slot, and a
timeout is answered at the deadline even when the driver would keep waiting.

Drivers are extras, imported only when a test runs: ``stead[snowflake]``
(``snowflake-connector-python``, key-pair authentication ``SNOWFLAKE_JWT``) and
``stead[redshift]`` (``redshift-connector``, user and password). Failures keep the warehouse's
own code (:class:`~stead.warehouses.schemas.ConnectionTestError`); no message carries a
credential (they go through :func:`stead.logs.redact_text`, which masks every resolved secret).
"""

from __future__ import annotations

import importlib.util
import math
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from stead import audit
from stead.admission import SCOPE_KEY, Admission
from stead.errors import AppError, BadRequest
from stead.identity.service import Actor
from stead.logs import redact_text, remember_secret
from stead.projects.models import Project
from stead.secrets import resolvers
from stead.secrets.keys import KeyProblem, check_private_key
from stead.settings import Settings
from stead.warehouses import StoredValue, spec_for
from stead.warehouses.schemas import ConnectionTestError, ConnectionTestResult

#: Seconds a test may run past its connect and query timeouts before it is answered as timed out.
GRACE_SECONDS = 1.0
SNOWFLAKE_DOMAIN = ".snowflakecomputing.com"
DRIVERS = {
    "SNOWFLAKE": ("snowflake.connector", "snowflake"),
    "REDSHIFT": ("redshift_connector", "redshift"),
}
#: What a warehouse's code means when the code alone hides the cause.
HINTS = {
    "390144": "the user does not exist, or none of its registered public keys "
    "(RSA_PUBLIC_KEY, RSA_PUBLIC_KEY_2) is the public key of this private key ({fingerprint})",
    "390100": "the user does not exist or the password is wrong",
    "28P01": "the user does not exist or the password is wrong",
    "28000": "the user may not connect to this database from here",
    "3D000": "the database does not exist",
}
PROPERTIES = "connectionOverrides[0].connectionProperties"


class DriverMissing(AppError):
    """503: the warehouse's driver is not installed in this Stead."""

    status, kind, title = 503, "driver-missing", "Warehouse driver not installed"


class ConnectionTestsBusy(AppError):
    """503: as many connection tests as ``warehouse_max_tests`` are running already."""

    status, kind, title = 503, "connection-tests-busy", "Too many connection tests"


@dataclass(frozen=True)
class SnowflakeTarget:
    """Where and as whom a Snowflake test logs in (key-pair authentication)."""

    account: str
    user: str
    private_key: str = field(repr=False)
    passphrase: str | None = field(repr=False)
    role: str | None
    warehouse: str | None
    database: str | None
    schema: str | None


@dataclass(frozen=True)
class RedshiftTarget:
    """Where and as whom a Redshift test logs in (user and password)."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    schema: str | None
    ssl: bool


Target = SnowflakeTarget | RedshiftTarget


def secrets_of(target: Target) -> tuple[str, ...]:
    """The credentials ``target`` carries, masked in every message of its test whatever their
    length."""
    if isinstance(target, SnowflakeTarget):
        return (target.private_key, target.passphrase or "")
    return (target.password,)


def host_of(target: Target, settings: Settings) -> str:
    """Where the test of ``target`` connects: ``host:port`` for Redshift, the Snowflake host."""
    if isinstance(target, SnowflakeTarget):
        return snowflake_host(target.account, settings)
    return f"{target.host}:{target.port}"


class _Failed(Exception):
    """A test that failed with ``code`` and ``message`` (internal control flow)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code)
        self.code = code
        self.message = message


def require_driver(warehouse: str) -> None:
    """Check that the driver of ``warehouse`` is installed (without importing it).

    Raises:
        DriverMissing: it is not (503; the detail names the extra to install).
    """
    module, extra = DRIVERS[warehouse]
    if importlib.util.find_spec(module.split(".")[0]) is None or (
        "." in module and importlib.util.find_spec(module) is None
    ):
        raise DriverMissing(
            f"The {warehouse.title()} driver is not installed on this server; "
            f"install Stead with it: pip install 'stead[{extra}]'"
        )


def resolve_target(
    session: Session,
    *,
    settings: Settings,
    project: Project,
    properties: Mapping[str, StoredValue],
) -> Target:
    """The warehouse, address and credentials that ``properties`` (an environment's connection
    properties in stored form, or a candidate's with inline values) stand for; every secret is
    resolved from its store (contract section 5).

    A value read from a secret for a property that has a normaliser (Redshift ``port``,
    ``useSsl``, Snowflake ``account`` ...) is checked and normalised like an inline one.

    Raises:
        DriverMissing: the warehouse's driver is not installed (503).
        BadRequest: a secret's value does not fit its property.
        and every error of :func:`stead.secrets.resolvers.resolve` (400, 403, 502, 503, 504).
    """
    require_driver(project.warehouse)
    spec = spec_for(project.warehouse)
    values: dict[str, str] = {}
    for key, stored in properties.items():
        if "value" in stored:
            values[key] = str(stored["value"])
            if key in spec.sensitive:
                remember_secret(values[key])
            continue
        value = resolvers.resolve(
            session,
            settings=settings,
            project_id=project.id,
            secret_name=stored["secretName"],
            secret_key=stored.get("secretKey"),
        )
        normaliser = spec.normalisers.get(key)
        try:
            values[key] = normaliser(value) if normaliser else value
        except ValueError as exc:
            where = f"{PROPERTIES}.{key}.secretName"
            raise BadRequest(
                f"The value of secret {stored['secretName']!r} cannot be {key}: {exc}",
                violations=[f"{where}: the secret's value {exc}"],
            ) from None
    if project.warehouse == "SNOWFLAKE":
        return SnowflakeTarget(
            account=values["account"],
            user=values["username"],
            private_key=values["privateKey"],
            passphrase=values.get("passphrase"),
            role=values.get("defaultRole"),
            warehouse=values.get("defaultWarehouse"),
            database=values.get("defaultDatabase"),
            schema=values.get("defaultSchema"),
        )
    return RedshiftTarget(
        host=values["url"],
        port=int(values["port"]),
        user=values["username"],
        password=values["password"],
        database=values["defaultDatabase"],
        schema=values.get("defaultSchema"),
        ssl=values.get("useSsl", "true") == "true",
    )


def _probe(host: str, port: int, timeout: float) -> None:
    """Open and close a TCP connection, so that an unreachable host is told apart from a
    silent one (drivers retry a refused connection until their login timeout).

    Raises:
        _Failed: ``UNREACHABLE`` (name not found, refused, no route) or ``TIMEOUT``.
    """
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except TimeoutError:
        raise _Failed("TIMEOUT", f"{host}:{port} did not accept a connection in time") from None
    except socket.gaierror:
        raise _Failed("UNREACHABLE", f"the host name {host!r} cannot be resolved") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _Failed("UNREACHABLE", f"cannot connect to {host}:{port}: {reason}") from None


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def snowflake_host(account: str, settings: Settings) -> str:
    """The host a Snowflake account is reached at: the ``snowflake_host`` setting, else
    ``<account>.snowflakecomputing.com`` (Snowflake's "Account identifiers" page)."""
    return settings.snowflake_host or account + SNOWFLAKE_DOMAIN


def _snowflake(target: SnowflakeTarget, settings: Settings) -> str:
    """Log in with the private key, apply role, warehouse, database and schema, and run
    ``SELECT CURRENT_VERSION()``; return the version.

    Raises:
        _Failed: the key or passphrase cannot be used (checked before the driver runs), or the
            warehouse or driver refused, with its error number.
    """
    try:
        checked = check_private_key(target.private_key, target.passphrase)
    except KeyProblem as exc:
        code, what = (
            ("PASSPHRASE", "passphrase") if exc.passphrase else ("PRIVATE_KEY", "privateKey")
        )
        raise _Failed(code, f"{what} {exc}") from None
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(
        checked.pem.encode(), target.passphrase.encode() if target.passphrase else None
    )
    host = snowflake_host(target.account, settings)
    _probe(host, settings.snowflake_port, settings.warehouse_connect_timeout_seconds)

    import snowflake.connector
    from snowflake.connector.errors import Error as SnowflakeError

    try:
        with snowflake.connector.connect(
            account=target.account,
            user=target.user,
            authenticator="SNOWFLAKE_JWT",
            private_key=key,
            role=target.role,
            warehouse=target.warehouse,
            database=target.database,
            schema=target.schema,
            host=host,
            port=settings.snowflake_port,
            protocol=settings.snowflake_protocol,
            login_timeout=math.ceil(settings.warehouse_connect_timeout_seconds),
            network_timeout=math.ceil(settings.warehouse_query_timeout_seconds),
            socket_timeout=math.ceil(settings.warehouse_connect_timeout_seconds),
            client_session_keep_alive=False,
            session_parameters={
                "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False,
                "CLIENT_TELEMETRY_ENABLED": False,
            },
        ) as conn:
            cursor = conn.cursor()
            cursor.execute(
                "SELECT CURRENT_VERSION()",
                timeout=math.ceil(settings.warehouse_query_timeout_seconds),
            )
            row = cursor.fetchone()
    except SnowflakeError as exc:
        code = str(exc.errno) if exc.errno else "DRIVER"
        message = exc.raw_msg or str(exc)
        hint = HINTS.get(code)
        if hint:
            message += " (" + hint.format(fingerprint=checked.fingerprint) + ")"
        raise _Failed(code, message) from None
    return str(row[0]) if row else ""


def _redshift(target: RedshiftTarget, settings: Settings) -> str:
    """Log in with user and password (SSL as ``useSsl`` and the ``redshift_sslmode`` setting
    say), set the schema and a statement timeout, and run ``SELECT version()``; return it.

    Raises:
        _Failed: the server refused, with its SQLSTATE, or the driver failed.
    """
    _probe(target.host, target.port, settings.warehouse_connect_timeout_seconds)
    import redshift_connector
    from redshift_connector.error import Error

    connect_timeout = math.ceil(settings.warehouse_connect_timeout_seconds)
    try:
        conn = redshift_connector.connect(
            host=target.host,
            port=target.port,
            database=target.database,
            user=target.user,
            password=target.password,
            ssl=target.ssl,
            sslmode=settings.redshift_sslmode,
            timeout=connect_timeout,
            application_name="stead connection test",
        )
        try:
            cursor = conn.cursor()
            statement_ms = math.ceil(settings.warehouse_query_timeout_seconds * 1000)
            cursor.execute(f"SET statement_timeout TO {statement_ms}")
            if target.schema:
                cursor.execute(f"SET search_path TO {_quote(target.schema)}")
            cursor.execute("SELECT version()")
            row = cursor.fetchone()
        finally:
            conn.close()
    except Error as exc:
        raise _redshift_failure(exc) from None
    return str(row[0]) if row else ""


def _redshift_failure(exc: Exception) -> _Failed:
    """The code and message of a ``redshift_connector`` error: the server's SQLSTATE (``C``)
    and message (``M``) when it sent an error response, else the driver's own words."""
    first: Any = exc.args[0] if exc.args else None
    if isinstance(first, dict) and "C" in first:
        code = str(first["C"])
        message = str(first.get("M", ""))
        hint = HINTS.get(code)
        return _Failed(code, f"{message} ({hint})" if hint else message)
    cause = exc.args[1] if len(exc.args) > 1 else exc.__cause__
    if isinstance(cause, TimeoutError):
        return _Failed("TIMEOUT", "the server did not answer in time")
    return _Failed("DRIVER", str(first) if first is not None else type(exc).__name__)


def _attempt(target: Target, settings: Settings) -> ConnectionTestResult:
    """Run one test in the calling thread (blocking); never raises."""
    start = time.monotonic()
    try:
        if isinstance(target, SnowflakeTarget):
            version = _snowflake(target, settings)
        else:
            version = _redshift(target, settings)
    except _Failed as exc:
        return _failure(start, exc.code, exc.message, secrets_of(target))
    except TimeoutError:
        return _failure(start, "TIMEOUT", "the warehouse did not answer in time")
    except Exception as exc:  # a driver bug or an unexpected answer: reported, never a 500
        return _failure(start, "DRIVER", f"{type(exc).__name__}: {exc}", secrets_of(target))
    return ConnectionTestResult(ok=True, latency_ms=_ms(start), server_version=version)


def _ms(start: float) -> int:
    return round((time.monotonic() - start) * 1000)


def _failure(
    start: float, code: str, message: str, secrets: tuple[str, ...] = ()
) -> ConnectionTestResult:
    # The server's own words may repeat the credential it was sent (a host that asked for a
    # clear-text password can echo it back): the target's secrets are masked whatever their
    # length, before the 2000-character cut.
    return ConnectionTestResult(
        ok=False,
        latency_ms=_ms(start),
        error=ConnectionTestError(code=code, message=redact_text(message, secrets)[:2000]),
    )


def limiter_for(request: Request) -> anyio.CapacityLimiter:
    """The app's limit on connection tests running at once (``warehouse_max_tests``)."""
    state = request.app.state
    limiter: anyio.CapacityLimiter | None = getattr(state, "connection_test_limiter", None)
    if limiter is None:
        settings: Settings = state.settings
        limiter = anyio.CapacityLimiter(max(1, settings.warehouse_max_tests))
        state.connection_test_limiter = limiter
    return limiter


async def run(
    target: Target, settings: Settings, limiter: anyio.CapacityLimiter
) -> ConnectionTestResult:
    """Run the test in a thread of its own and answer by the deadline: the connect timeout plus
    the query timeout plus :data:`GRACE_SECONDS`. At the deadline the answer is ``TIMEOUT`` and
    the thread is left to end on the driver's own timeouts; a test waiting for a place in
    ``limiter`` counts against its deadline."""
    deadline = (
        settings.warehouse_connect_timeout_seconds
        + settings.warehouse_query_timeout_seconds
        + GRACE_SECONDS
    )
    start = time.monotonic()
    with anyio.move_on_after(deadline):
        return await anyio.to_thread.run_sync(
            _attempt, target, settings, limiter=limiter, abandon_on_cancel=True
        )
    return _failure(
        start,
        "TIMEOUT",
        f"no answer within {deadline:g} s (connect timeout "
        f"{settings.warehouse_connect_timeout_seconds:g} s, query timeout "
        f"{settings.warehouse_query_timeout_seconds:g} s)",
    )


def _begin_write(session: Session) -> None:
    """Start the session's next transaction as a writer (SQLite: ``BEGIN IMMEDIATE``)."""
    session.connection(execution_options={"stead_write": True})


async def run_outside(request: Request, session: Session, target: Target) -> ConnectionTestResult:
    """Commit the request's transaction, step out of admission control, run the test, and
    come back with a new write transaction on ``session``.

    Raises:
        ConnectionTestsBusy: ``warehouse_max_tests`` tests are running (503, ``Retry-After``);
            raised before the commit, so a retry under the same ``Idempotency-Key`` runs again.
    """
    limiter = limiter_for(request)
    if limiter.available_tokens < 1:
        raise ConnectionTestsBusy(
            f"{limiter.total_tokens:g} connection tests are running; try again shortly",
            headers={"Retry-After": "1"},
        )
    await run_in_threadpool(session.commit)
    settings: Settings = request.app.state.settings
    admission = request.scope.get(SCOPE_KEY)
    if isinstance(admission, Admission):
        async with admission.stepped_out():
            result = await run(target, settings, limiter)
    else:
        result = await run(target, settings, limiter)
    await run_in_threadpool(_begin_write, session)
    return result


def record(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    environment: str,
    host: str,
    result: ConnectionTestResult,
    validation: bool = False,
) -> None:
    """Audit ``environment.connection_tested``: details ``host`` (where the credentials went,
    :func:`host_of`), ``ok``, the error code, and ``validation`` (a ``?validate=true`` test of
    candidate settings); never a credential."""
    audit.record(
        session,
        actor=actor,
        action="environment.connection_tested",
        target_type="environment",
        target_id=environment,
        project_id=project.id,
        details={
            "host": host,
            "ok": result.ok,
            "code": result.error.code if result.error else None,
            "validation": validation,
        },
    )


def validate(
    request: Request,
    session: Session,
    *,
    actor: Actor,
    project: Project,
    environment: str,
    properties: Mapping[str, StoredValue],
) -> None:
    """``?validate=true`` on environment create and update: test the candidate properties
    before anything is stored (sync routes). The test is audited like any other (see
    :func:`record`); when it fails, that event is committed before the 400, which changes
    nothing else.

    Raises:
        BadRequest: the test failed; ``warehouseError`` holds ``{code, message}`` and the
            violation names the connection properties.
        and every error of :func:`resolve_target` and :func:`run_outside`.
    """
    settings: Settings = request.app.state.settings
    target = resolve_target(session, settings=settings, project=project, properties=properties)
    result = anyio.from_thread.run(run_outside, request, session, target)
    record(
        session,
        actor=actor,
        project=project,
        environment=environment,
        host=host_of(target, settings),
        result=result,
        validation=True,
    )
    if result.error is not None:
        session.commit()
        error = result.error
        raise BadRequest(
            f"The connection test failed, so nothing was stored: {error.code} {error.message}",
            violations=[f"{PROPERTIES}: the connection test failed: {error.code} {error.message}"],
            extra={"warehouseError": error.model_dump()},
        )
