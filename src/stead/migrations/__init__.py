"""Alembic migrations, shipped inside the package so an installed Stead can migrate itself.

Migrating takes a database-wide lock first, so any number of servers may start (and migrate)
at once: one applies the migrations, the others wait and then find the schema at head. On
PostgreSQL the lock is a transaction-level advisory lock (``pg_advisory_xact_lock``, PostgreSQL
documentation, "Advisory Locks"); on SQLite, the database's own write lock (``BEGIN
IMMEDIATE``). The migrations run in that one transaction, so a failed upgrade leaves the schema
as it was. A database at a revision this version does not know (written by a newer Stead) is
refused before anything changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, event, pool, text

from stead import __version__
from stead.db import make_private_sqlite_file

HERE = Path(__file__).parent
#: The advisory lock key of migrations on PostgreSQL (any fixed 64-bit number; ASCII "STEADMIG").
LOCK_KEY = 0x5354454144_4D4947
#: How long a server waits for another one's migrations on SQLite, in milliseconds.
SQLITE_LOCK_WAIT_MS = 120_000


class SchemaError(RuntimeError):
    """The database's schema cannot be used by this version: it is newer (written by a later
    Stead), or older and ``--no-migrate`` was asked for. The message says what to do."""


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at these migrations and the database ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head() -> str:
    """The newest revision this version ships."""
    revision = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert revision is not None
    return revision


@contextmanager
def _locked(url: str) -> Iterator[Connection]:
    """A connection inside a transaction that holds the migration lock (module docstring)."""
    sqlite = url.startswith("sqlite")
    engine = create_engine(url, poolclass=pool.NullPool)
    if sqlite:

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # BEGIN is ours (SQLAlchemy's pysqlite recipe)
            dbapi_conn.execute(f"PRAGMA busy_timeout={SQLITE_LOCK_WAIT_MS}")

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        with engine.connect() as conn, conn.begin():
            if not sqlite:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            yield conn
    finally:
        engine.dispose()


def _current(conn: Connection, script: ScriptDirectory) -> str | None:
    """The database's revision (None: empty database).

    Raises:
        SchemaError: the revision is not one of this version's.
    """
    heads = MigrationContext.configure(conn).get_current_heads()
    for revision in heads:
        if revision not in {s.revision for s in script.walk_revisions()}:
            raise SchemaError(
                f"the database schema is at revision {revision}, which Stead {__version__} "
                "does not know: a newer Stead has upgraded it. Run that version (or newer), or "
                "restore the backup taken before the upgrade"
            )
    return heads[0] if heads else None


def _pending(script: ScriptDirectory, current: str | None, target: str = "heads") -> list[str]:
    """Revisions after ``current`` up to ``target``, oldest first."""
    revisions = script.iterate_revisions(target, current or "base")
    return [r.revision for r in reversed(list(revisions)) if r.revision != current]


def _prepare(url: str) -> None:
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        make_private_sqlite_file(url)


def upgrade(url: str, revision: str = "head") -> list[str]:
    """Apply migrations up to ``revision`` on the database at ``url``, under the migration lock
    (creating SQLite's folder, mode 0700, when it is missing, and the database file itself with
    mode 0600).

    Returns:
        The revisions applied, oldest first; empty when the database was already there.

    Raises:
        SchemaError: the database is at a revision this version does not know.
    """
    _prepare(url)
    cfg = alembic_config(url)
    script = ScriptDirectory.from_config(cfg)
    with _locked(url) as conn:
        applied = _pending(script, _current(conn, script), revision)
        if applied:  # alembic's environment is loaded only when there is something to apply
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    return applied


def check_schema(url: str) -> None:
    """Check, without changing anything, that the database is at this version's head (``stead
    serve --no-migrate``).

    Raises:
        SchemaError: the database is newer (:func:`upgrade`), or older: the message lists the
            revisions ``stead db upgrade`` would apply.
    """
    _prepare(url)
    script = ScriptDirectory.from_config(alembic_config(url))
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            current = _current(conn, script)
    finally:
        engine.dispose()
    pending = _pending(script, current)
    if pending:
        raise SchemaError(
            f"the database schema is at revision {current or 'none (empty database)'} and "
            f"Stead {__version__} needs {head()}; run `stead db upgrade` first (it applies "
            f"{', '.join(pending)})"
        )
