"""Connection tests: open a real session to the warehouse with an environment's credentials and
run a trivial query (docs/api.md, Connection tests).

The credentials are resolved first (:func:`resolve_target`, inside the request's transaction),
then the transaction ends and the request steps out of admission control while the vendor's
driver runs (:func:`run`, in a thread of its own under a hard deadline): a slow or silent
warehouse never holds a database connection, SQLite's write lock or an admission slot, and a
timeout is answered at the deadline even when the driver would keep waiting.

Drivers are extras, imported only when a test runs: ``stead[snowflake]``
(``snowflake-connector-python``, key-pair authentication ``SNOWFLAKE_JWT``) and
``stead[redshift]`` (``redshift-connector``, user and password). Failures keep the warehouse's
own code (:class:`~stead.warehouses.schemas.ConnectionTestError`), and anything short of a
warehouse's answer is one ``UNREACHABLE``; the host is checked by the outbound policy
(:mod:`stead.outbound`) when the request arrives and again right before connecting. No message
carries a credential (they go through :func:`stead.logs.redact_text` with the test's own secret
values, so that an answer never depends on anyone else's secret).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
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
from stead.environments import service as environment_service
from stead.environments.models import Environment
from stead.errors import AppError, BadRequest
from stead.identity.actor import Actor
from stead.logs import redact_text, remember_secret
from stead.outbound import DestinationRefused, HostUnresolved, Policy
from stead.pipeline.metrics import CONNECTION_TEST_SECONDS, CONNECTION_TESTS
from stead.pipeline.transaction import stepped_out
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
#: The one answer for every failure before the warehouse itself gave a verdict: a name that does
#: not resolve, a closed or filtered port, a server that speaks another protocol (SSH, HTTP, a
#: web page ...). Saying which would make the test a port scanner (docs/decisions.md).
UNREACHABLE_MESSAGE = (
    "no {warehouse} warehouse answered at this address: the host cannot be reached, or what "
    "answers there is not {warehouse}"
)
#: Snowflake's drivers number their own errors (no connection, an answer they cannot read) from
#: 200000 to 299999; the service's codes (390xxx for login, 00xxxx for SQL) lie outside.
_SNOWFLAKE_DRIVER_CODES = range(200000, 300000)
log = logging.getLogger(__name__)


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
    #: Every secret value the test uses (masked in its error message).
    secrets: tuple[str, ...] = field(default=(), repr=False)


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
    #: Every secret value the test uses (masked in its error message).
    secrets: tuple[str, ...] = field(default=(), repr=False)


Target = SnowflakeTarget | RedshiftTarget


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


def _unreachable(warehouse: str) -> _Failed:
    return _Failed("UNREACHABLE", UNREACHABLE_MESSAGE.format(warehouse=warehouse))


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
    resolved from its store (docs/api.md, Secrets).

    A value read from a secret for a property that has a normaliser (Redshift ``port``,
    ``useSsl``, Snowflake ``account`` ...) is checked and normalised like an inline one.

    Raises:
        DriverMissing: the warehouse's driver is not installed (503).
        BadRequest: a secret's value does not fit its property.
        DestinationRefused: the outbound policy refuses the warehouse's host or an address it
            resolves to (400 naming ``url`` or ``account``); a name that does not resolve is
            left to the test, which answers ``UNREACHABLE``.
        and every error of :func:`stead.secrets.resolvers.resolve` (400, 403, 502, 503, 504).
    """
    require_driver(project.warehouse)
    spec = spec_for(project.warehouse)
    values: dict[str, str] = {}
    hidden: list[str] = []
    for key, stored in properties.items():
        if "value" in stored:
            values[key] = str(stored["value"])
            if key in spec.sensitive:
                remember_secret(values[key])
                hidden.append(values[key])
            continue
        value = resolvers.resolve(
            session,
            settings=settings,
            project_id=project.id,
            secret_name=stored["secretName"],
            secret_key=stored.get("secretKey"),
        )
        hidden.append(value)
        normaliser = spec.normalisers.get(key)
        try:
            values[key] = normaliser(value) if normaliser else value
        except ValueError as exc:
            where = f"{PROPERTIES}.{key}.secretName"
            raise BadRequest(
                f"The value of secret {stored['secretName']!r} cannot be {key}: {exc}",
                violations=[f"{where}: the secret's value {exc}"],
            ) from None
    target: Target
    if project.warehouse == "SNOWFLAKE":
        target = SnowflakeTarget(
            account=values["account"],
            user=values["username"],
            private_key=values["privateKey"],
            passphrase=values.get("passphrase"),
            role=values.get("defaultRole"),
            warehouse=values.get("defaultWarehouse"),
            database=values.get("defaultDatabase"),
            schema=values.get("defaultSchema"),
            secrets=tuple(hidden),
        )
    else:
        target = RedshiftTarget(
            host=values["url"],
            port=int(values["port"]),
            user=values["username"],
            password=values["password"],
            database=values["defaultDatabase"],
            schema=values.get("defaultSchema"),
            ssl=values.get("useSsl", "true") == "true",
            secrets=tuple(hidden),
        )
    with contextlib.suppress(HostUnresolved):
        # A name that does not resolve is the test's to answer, as UNREACHABLE like any host
        # it cannot reach.
        destination(target, settings, Policy.from_settings(settings))
    return target


def destination(target: Target, settings: Settings, policy: Policy) -> list[str]:
    """Check where ``target`` leads against ``policy`` (kind ``snowflake`` or ``redshift``) and
    return the addresses its host resolves to now, each allowed.

    Raises:
        DestinationRefused: the host is not allowed or resolves to a refused address (400 naming
            ``account`` or ``url`` among the connection properties).
        HostUnresolved: the name does not resolve.
    """
    if isinstance(target, SnowflakeTarget):
        host = snowflake_host(target.account, settings)
        addresses = policy.check_host(
            "snowflake", host, settings.snowflake_port, field=f"{PROPERTIES}.account"
        )
    else:
        addresses = policy.check_host(
            "redshift", target.host, target.port, field=f"{PROPERTIES}.url"
        )
    return [str(address) for address in addresses]


def _probe(target: Target, settings: Settings, policy: Policy) -> str:
    """Check the destination again right before connecting (the name may resolve differently
    than when the request was checked), then open and close a TCP connection to the first
    allowed address that accepts one, so that an unreachable host is answered at once (drivers
    retry a refused connection until their login timeout). Return that address.

    Raises:
        _Failed: ``UNREACHABLE`` (refused destination, name not found, refused, no route,
            no connection in time), with the same message whatever the cause.
    """
    warehouse = "Snowflake" if isinstance(target, SnowflakeTarget) else "Redshift"
    port = settings.snowflake_port if isinstance(target, SnowflakeTarget) else target.port
    try:
        addresses = destination(target, settings, policy)
    except DestinationRefused:
        raise _unreachable(warehouse) from None
    for address in addresses:
        try:
            socket.create_connection(
                (address, port), timeout=settings.warehouse_connect_timeout_seconds
            ).close()
        except OSError:
            continue
        return address
    raise _unreachable(warehouse)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def snowflake_host(account: str, settings: Settings) -> str:
    """The host a Snowflake account is reached at: the ``snowflake_host`` setting, else
    ``<account>.snowflakecomputing.com`` (Snowflake's "Account identifiers" page)."""
    return settings.snowflake_host or account + SNOWFLAKE_DOMAIN


def _snowflake(target: SnowflakeTarget, settings: Settings, policy: Policy) -> str:
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
    host = snowflake_host(target.account, settings)
    # HTTPS to the name: the certificate check stops a name that resolves elsewhere later.
    _probe(target, settings, policy)

    import snowflake.connector
    from snowflake.connector.errors import Error as SnowflakeError

    try:
        with snowflake.connector.connect(
            account=target.account,
            user=target.user,
            authenticator="SNOWFLAKE_JWT",
            private_key=checked.key,
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
        if not exc.errno or exc.errno in _SNOWFLAKE_DRIVER_CODES:
            raise _unreachable("Snowflake") from None
        code = str(exc.errno)
        message = exc.raw_msg or str(exc)
        hint = HINTS.get(code)
        if hint:
            message += " (" + hint.format(fingerprint=checked.fingerprint) + ")"
        raise _Failed(code, message) from None
    return str(row[0]) if row else ""


def _redshift(target: RedshiftTarget, settings: Settings, policy: Policy) -> str:
    """Log in with user and password (SSL as ``useSsl`` and the ``redshift_sslmode`` setting
    say), set the schema and a statement timeout, and run ``SELECT version()``; return it.

    Raises:
        _Failed: the server refused, with its SQLSTATE, or the driver failed.
    """
    address = _probe(target, settings, policy)
    # Without SSL nothing would notice a name that resolves elsewhere by now: the driver is
    # given the checked address. With SSL it needs the name for verify-full; a host that does
    # not hold a certificate for that name fails the handshake before the password is sent.
    host = target.host if target.ssl else address
    import redshift_connector
    from redshift_connector.error import Error

    connect_timeout = math.ceil(settings.warehouse_connect_timeout_seconds)
    try:
        conn = redshift_connector.connect(
            host=host,
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
    and message (``M``) when it sent an error response, ``TIMEOUT`` when it said nothing in
    time, else ``UNREACHABLE`` (what answered is not a warehouse)."""
    first: Any = exc.args[0] if exc.args else None
    if isinstance(first, dict) and "C" in first:
        code = str(first["C"])
        message = str(first.get("M", ""))
        hint = HINTS.get(code)
        return _Failed(code, f"{message} ({hint})" if hint else message)
    cause = exc.args[1] if len(exc.args) > 1 else exc.__cause__
    if isinstance(cause, TimeoutError):
        return _Failed("TIMEOUT", "the server did not answer in time")
    return _unreachable("Redshift")


def attempt(target: Target, settings: Settings, policy: Policy) -> ConnectionTestResult:
    """Run one test in the calling thread (blocking), checking the destination with ``policy``
    right before connecting; never raises."""
    start = time.monotonic()
    try:
        if isinstance(target, SnowflakeTarget):
            version = _snowflake(target, settings, policy)
        else:
            version = _redshift(target, settings, policy)
    except _Failed as exc:
        return _failure(start, exc.code, exc.message, target.secrets)
    except TimeoutError:
        return _failure(start, "TIMEOUT", "the warehouse did not answer in time")
    except Exception as exc:  # an answer the driver cannot read, or a driver bug: never a 500
        log.warning("connection test failed in the driver: %s", type(exc).__name__)
        warehouse = "Snowflake" if isinstance(target, SnowflakeTarget) else "Redshift"
        return _failure(start, "UNREACHABLE", UNREACHABLE_MESSAGE.format(warehouse=warehouse))
    return ConnectionTestResult(ok=True, latency_ms=_ms(start), server_version=version)


def _ms(start: float) -> int:
    return round((time.monotonic() - start) * 1000)


def _failure(
    start: float, code: str, message: str, secrets: tuple[str, ...] = ()
) -> ConnectionTestResult:
    """A failed result whose message has ``secrets`` (this test's own values) masked whatever
    their length, before the 2000-character cut: the server's own words may repeat the
    credential it was sent (a host that asked for a clear-text password can echo it back)."""
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
    result: ConnectionTestResult | None = None
    with anyio.move_on_after(deadline):
        result = await anyio.to_thread.run_sync(
            attempt,
            target,
            settings,
            Policy.from_settings(settings),
            limiter=limiter,
            abandon_on_cancel=True,
        )
    if result is None:
        result = _failure(
            start,
            "TIMEOUT",
            f"no answer within {deadline:g} s (connect timeout "
            f"{settings.warehouse_connect_timeout_seconds:g} s, query timeout "
            f"{settings.warehouse_query_timeout_seconds:g} s)",
        )
    warehouse = "snowflake" if isinstance(target, SnowflakeTarget) else "redshift"
    outcome = "ok" if result.error is None else result.error.code
    CONNECTION_TESTS.labels(warehouse, outcome).inc()
    CONNECTION_TEST_SECONDS.labels(warehouse).observe(time.monotonic() - start)
    return result


async def run_outside(request: Request, session: Session, target: Target) -> ConnectionTestResult:
    """Run the test outside the request's transaction and admission slot
    (:func:`stead.pipeline.transaction.stepped_out`), coming back with a new write transaction
    on ``session``.

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
    settings: Settings = request.app.state.settings
    return await stepped_out(request, session, lambda: run(target, settings, limiter))


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


async def run_for_environment(
    request: Request,
    session: Session,
    *,
    actor: Actor,
    project: Project,
    environment: Environment,
) -> ConnectionTestResult:
    """Test ``environment``'s stored settings (``POST .../connection-test`` and the console's
    Test connection): check that the actor may send the environment's stored secrets where it
    names (:func:`stead.environments.service.check_secret_use`), resolve its credentials, run the
    test outside the request's transaction (:func:`run_outside`), then audit it
    (:func:`record`). The caller has checked ``environment.run`` on the environment.

    Returns the result, ``ok`` false with the warehouse's own code when it refused.

    Raises:
        PermissionDenied: a stored secret of another environment is not the actor's to send.
        and every error of :func:`resolve_target` and :func:`run_outside`.
    """
    settings: Settings = request.app.state.settings
    properties = environment.connection_properties
    await run_in_threadpool(
        environment_service.check_secret_use,
        session,
        actor=actor,
        project=project,
        properties=properties,
        environment=environment,
    )
    target = await run_in_threadpool(
        resolve_target, session, settings=settings, project=project, properties=properties
    )
    result = await run_outside(request, session, target)
    await run_in_threadpool(
        record,
        session,
        actor=actor,
        project=project,
        environment=environment.name,
        host=host_of(target, settings),
        result=result,
    )
    return result
