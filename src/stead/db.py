"""Database plumbing: declarative ``Base``, engine factory, and the per-request session.

SQLite (the embedded default) runs in WAL mode with foreign keys on; write transactions start
with ``BEGIN IMMEDIATE`` so two concurrent writers queue on the lock instead of failing with
``database is locked`` half-way through. PostgreSQL is used through psycopg 3.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy import (
    DateTime,
    Engine,
    MetaData,
    Select,
    String,
    TypeDecorator,
    bindparam,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from starlette.concurrency import run_in_threadpool

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Current time, timezone-aware UTC, truncated to milliseconds (docs/api.md)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_uuid() -> str:
    """A lower-case UUID v4 string (docs/api.md: ids)."""
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware.

    SQLite has no time zones; PostgreSQL stores ``timestamptz``. Either way Python sees UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base: constraint naming convention; ``created_at``/``updated_at`` everywhere."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


UUIDStr = String(36)
_M = TypeVar("_M")


_NAMED_IN_PROJECT: dict[type[Any], Select[Any]] = {}


def named_in_project(model: type[_M]) -> Select[_M]:
    """``SELECT model WHERE project_id = :project_id AND name_key = :name_key``, built once per
    model (``model`` has ``project_id`` and ``name_key`` columns): a project's environment,
    connection, secret reference or hosted secret by name. Building a statement costs more
    Python time than running it, and these run on every request that names one.
    """
    statement = _NAMED_IN_PROJECT.get(model)
    if statement is None:
        columns: Any = model
        statement = select(model).where(
            columns.project_id == bindparam("project_id"),
            columns.name_key == bindparam("name_key"),
        )
        _NAMED_IN_PROJECT[model] = statement
    return statement


def _configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, a busy timeout, and explicit BEGIN (SQLAlchemy's pysqlite recipe)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get("stead_read"):
            return  # each statement is its own transaction (read-only sessions)
        mode = "IMMEDIATE" if options.get("stead_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


#: A pooled PostgreSQL connection left unused for longer than this is pinged before reuse.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_idle_connections(engine: Engine) -> None:
    """Check a pooled connection with the dialect's ping (``SELECT 1``) at checkout when it has
    been idle for over :data:`PING_AFTER_IDLE_SECONDS`; a dead one is replaced, and the pool
    with it (SQLAlchemy's checkout event raising ``InvalidatePoolError``, its documented custom
    pessimistic disconnect handling).

    ``pool_pre_ping`` pings at every checkout: a round trip per request. A connection in use
    moments ago needs none; if the server went away meanwhile, the request's first statement
    fails (503), SQLAlchemy invalidates the pool, and the next request reconnects.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise InvalidatePoolError("a pooled connection is gone") from exc


#: Owner-only: the database holds hashes, encrypted secrets and the audit trail.
PRIVATE_FILE_MODE = 0o600


def make_private_sqlite_file(url: str) -> None:
    """Make the SQLite database file of ``url`` readable by its owner only (mode 0600).

    A missing file is created empty with that mode; an existing one, and its ``-wal`` and
    ``-shm`` files, lose any group and other permission bits. SQLite creates its ``-wal`` and
    ``-shm`` files with the permissions of the database file (SQLite's ``unix`` VFS,
    https://www.sqlite.org/tempfiles.html), so they follow. In-memory URLs are left alone.
    """
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return
    path = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if file.stat().st_mode & 0o077:
                file.chmod(PRIVATE_FILE_MODE)


def make_engine(url: str) -> Engine:
    """Create the engine for ``url`` (``sqlite:///...`` or ``postgresql+psycopg://...``).

    A SQLite file is made private first (:func:`make_private_sqlite_file`).
    """
    if url.startswith("sqlite"):
        make_private_sqlite_file(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20)
    _ping_idle_connections(engine)
    return engine


def make_sessionmaker(
    engine: Engine, *, write: bool = False, read_only: bool = False
) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit.

    Args:
        write: transactions take SQLite's write lock at BEGIN (``BEGIN IMMEDIATE``; no effect
            on PostgreSQL).
        read_only: for sessions that only read: each statement then commits on its own
            (autocommit: no ``BEGIN``/``COMMIT`` statements or round trips). Under PostgreSQL's
            default READ COMMITTED isolation every statement reads its own snapshot either way;
            on SQLite each statement reads the latest committed state, as on PostgreSQL. On
            SQLite, :func:`run_read` runs such a session's reads on the event loop.
    """
    bind = engine
    info: dict[str, Any] = {}
    if write:
        bind = engine.execution_options(stead_write=True)
    elif read_only and engine.dialect.name == "postgresql":
        bind = engine.execution_options(isolation_level="AUTOCOMMIT")
    elif read_only:
        bind = engine.execution_options(stead_read=True)
        info[_READS_IN_PLACE] = True
    return sessionmaker(bind, expire_on_commit=False, info=info)


_READS_IN_PLACE = "stead.reads_in_place"
_T = TypeVar("_T")


async def run_read(session: Session, func: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
    """``func(*args, **kwargs)``, a short read through ``session``, from an async dependency.

    A read-only session on SQLite runs it right on the event loop: the read is a call into the
    SQLite library in this process, and in WAL mode a reader waits for no lock, so a worker-thread
    hop would cost more than the read. Any other session runs it in a worker thread: a write
    session's first statement may wait for SQLite's write lock, and a PostgreSQL read is a
    network round trip, neither of which may stall the event loop.

    Raises:
        whatever ``func`` raises.
    """
    if session.info.get(_READS_IN_PLACE):
        return func(*args, **kwargs)
    return await run_in_threadpool(func, *args, **kwargs)


def session_scope(factory: sessionmaker[Session], *, write: bool) -> Iterator[Session]:
    """Yield one session as one transaction: commit on success, roll back on any error.

    ``write=True`` takes SQLite's write lock at BEGIN (no effect on PostgreSQL).
    """
    session = factory()
    try:
        if write:
            session.connection(execution_options={"stead_write": True})
        yield session
    except BaseException:
        _finish(session, commit=False)
        raise
    _finish(session, commit=True)


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _finish(session: Session, *, commit: bool) -> None:
    """Commit (or roll back) and close ``session``; a failed commit still closes it."""
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def _end(session: Session, *, commit: bool, on_loop: bool) -> None:
    """:func:`_finish` on the event loop, or in a worker thread shielded from cancellation so a
    connection is never left mid-transaction."""
    if on_loop:
        _finish(session, commit=commit)
        return
    with anyio.CancelScope(shield=True):
        await run_in_threadpool(_finish, session, commit=commit)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """FastAPI dependency: one session and one transaction per request.

    The session is made on the event loop (it connects lazily, in the worker thread of its first
    query); the commit, or the rollback after an error, runs in a worker thread, shielded from
    cancellation so a connection is never left mid-transaction; a read (autocommit, so there is
    nothing to send) ends on the loop, and so does a write a sync endpoint already committed in
    its own thread (:class:`TransactionRoute`).
    Write requests (any method but GET/HEAD/OPTIONS) take SQLite's write lock at their first
    statement.

    Registered with ``scope="function"`` so the commit happens before the response is sent: a
    failed commit is reported as an error, never as success (ARCHITECTURE rule 3).
    """
    async with _request_transaction(request, reading=request.method in _SAFE_METHODS) as session:
        yield session


async def get_write_session(request: Request) -> AsyncIterator[Session]:
    """FastAPI dependency: like :func:`get_session`, but a write transaction whatever the method,
    for a read that must leave a trace in the same transaction (reading an agent's client secret
    writes an audit event)."""
    async with _request_transaction(request, reading=False) as session:
        yield session


@asynccontextmanager
async def _request_transaction(request: Request, *, reading: bool) -> AsyncIterator[Session]:
    state = request.app.state
    factory = state.read_sessionmaker if reading else state.write_sessionmaker
    session: Session = factory()
    # A read runs in autocommit on both databases: ending it sends nothing (psycopg skips
    # COMMIT/ROLLBACK on an idle connection; SQLite's WAL reads take no lock): no hop. Nor does
    # a transaction already committed in the endpoint's thread (TransactionRoute).
    try:
        yield session
    except BaseException:
        await _end(session, commit=False, on_loop=reading or not session.in_transaction())
        raise
    await _end(session, commit=True, on_loop=reading or not session.in_transaction())


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
WriteSessionDep = Annotated[Session, Depends(get_write_session, scope="function")]


class TransactionRoute(APIRoute):
    """The route class of Stead's API routers: a sync endpoint commits the request's session
    (a :data:`SessionDep` among its parameters) in its own worker thread, after it returns.

    The transaction then ends in the thread that ran its statements, and :func:`get_session`
    finds nothing left to commit: one thread hop per write request instead of two (a hop costs
    more Python time than a small transaction's commit). An endpoint that raises commits
    nothing: :func:`get_session` rolls back, as before. Async endpoints are left as they are.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _committing(endpoint)
        super().__init__(path, endpoint, **kwargs)


def _committing(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)  # FastAPI reads the parameters through ``__wrapped__``
    def run(**kwargs: Any) -> Any:
        result = endpoint(**kwargs)
        for value in kwargs.values():
            if isinstance(value, Session) and value.in_transaction():
                value.commit()
        return result

    return run
