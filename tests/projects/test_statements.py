"""The hand-built project statements insert every column of the projects table on both
backends, so a column added to the table cannot be dropped by one backend's create."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Engine, Index, MetaData, String, Table, create_engine, select
from sqlalchemy.dialects import postgresql, sqlite

from stead.db import new_uuid
from stead.identity.models import Account
from stead.projects.statements import (
    PROJECT_CREATE_POSTGRESQL,
    PROJECT_INSERT_SQLITE,
    insert_project,
    postgresql_create,
    projects_table,
)
from stead.wire import name_key

EVERY_COLUMN = {column.name for column in projects_table.columns}
#: Columns the create statements fill in themselves.
STAMPED = {"seq", "created_at", "updated_at"}


def _inserted_columns(sql: str) -> set[str]:
    match = re.search(r"INSERT INTO projects \(([^)]*)\)", sql)
    assert match is not None, sql
    return {name.strip() for name in match.group(1).split(",")}


def _values(account_id: str, name: str) -> dict[str, object]:
    return {
        "id": new_uuid(),
        "account_id": account_id,
        "name": name,
        "name_key": name_key(name),
        "description": "every column",
        "warehouse": "REDSHIFT",
        "agent_deployment_type": "HYBRID",
    }


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


def test_compiled_creates_insert_every_column() -> None:
    pg = str(PROJECT_CREATE_POSTGRESQL.compile(dialect=postgresql.dialect()))
    assert _inserted_columns(pg) == EVERY_COLUMN
    given = sorted(EVERY_COLUMN)  # the SQLite create's row carries every column
    lite = str(PROJECT_INSERT_SQLITE.compile(dialect=sqlite.dialect(), column_keys=given))
    assert _inserted_columns(lite) == EVERY_COLUMN
    assert set(_values("a", "b")) | STAMPED == EVERY_COLUMN  # what the service passes


def test_every_column_reaches_the_database(engine: Engine) -> None:
    with engine.begin() as conn:
        account_id = conn.scalars(select(Account.id)).one()
        values = insert_project(conn, _values(account_id, "Every Column"))
        assert values is not None and set(values) == EVERY_COLUMN
        stored = conn.execute(
            select(projects_table).where(projects_table.c.id == values["id"])
        ).one()
    for column in EVERY_COLUMN - STAMPED:
        assert stored._mapping[column] == values[column], column
    assert stored.seq >= 1 and stored.created_at is not None


def test_a_new_column_is_in_the_postgresql_create(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the PostgreSQL create; SQLite inserts the row it is given")
    metadata = MetaData()
    extended = Table(
        "projects_extended",
        metadata,
        *(Column(c.name, c.type, primary_key=c.primary_key) for c in projects_table.columns),
        Column("team", String(50)),
        Index("uq_projects_extended_name", "account_id", "name_key", unique=True),
    )
    statement = postgresql_create(extended)
    assert "team" in _inserted_columns(
        str(statement.compile(dialect=postgresql.dialect())).replace(
            "projects_extended", "projects"
        )
    )
    metadata.create_all(engine)
    with engine.begin() as conn:
        account_id = conn.scalars(select(Account.id)).one()
        row = {f"p_{k}": v for k, v in _values(account_id, "Extended").items()}
        assert conn.execute(statement, {**row, "p_team": "finance", "acct": account_id}).first()
        assert conn.scalar(select(extended.c.team)) == "finance"
