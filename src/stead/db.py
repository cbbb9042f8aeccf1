"""Database plumbing: declarative ``Base``, engine and session factories, ``session_scope``.

The per-request session is :mod:`stead.pipeline.transaction`'s.

SQLite (the embedded default) runs in WAL mode with foreign keys on; write transactions start
with ``BEGIN IMMEDIATE`` so two concurrent writers queue on the lock instead of failing with
``database is locked`` half-way through. PostgreSQL is used through psycopg 3.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

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


def sqlite_files(path: Path) -> tuple[Path, Path, Path]:
    """The SQLite database file ``path`` and the ``-wal`` and ``-shm`` files SQLite keeps beside
    it in WAL mode (https://www.sqlite.org/wal.html, "Files used by WAL mode")."""
    return path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


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
    for file in sqlite_files(path):
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
            SQLite, :func:`stead.pipeline.transaction.run_read` runs such a session's reads
            on the event loop.
    """
    bind = engine
    info: dict[str, Any] = {}
    if write:
        bind = engine.execution_options(stead_write=True)
    elif read_only and engine.dialect.name == "postgresql":
        bind = engine.execution_options(isolation_level="AUTOCOMMIT")
    elif read_only:
        bind = engine.execution_options(stead_read=True)
        info[READS_IN_PLACE] = True
    return sessionmaker(bind, expire_on_commit=False, info=info)


#: ``Session.info`` flag of a read-only SQLite session: its reads may run on the event loop.
READS_IN_PLACE = "stead.reads_in_place"


def begin_write(session: Session) -> None:
    """Start ``session``'s next transaction as a writer (SQLite: ``BEGIN IMMEDIATE``; no effect
    on PostgreSQL)."""
    session.connection(execution_options={"stead_write": True})


def finish(session: Session, *, commit: bool) -> None:
    """Commit (or roll back) and close ``session``; a failed commit still closes it."""
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


@contextmanager
def session_scope(factory: sessionmaker[Session], *, write: bool) -> Iterator[Session]:
    """``with session_scope(factory, write=...) as session:`` one session as one transaction:
    commit when the block ends, roll back when it raises.

    ``write=True`` takes SQLite's write lock at BEGIN (no effect on PostgreSQL).
    """
    session = factory()
    try:
        if write:
            begin_write(session)
        yield session
    except BaseException:
        finish(session, commit=False)
        raise
    finish(session, commit=True)
