"""The hand-built SQL of projects: creating one (counted into its account and list bucket) and
finding the start of a list page.

Why by hand: the ORM's unit of work cost more Python time per create than the statements
themselves (docs/decisions.md, "Reliability under load, races and hostile input"). Every
statement is a plain Core statement built once at import; a call binds its parameters. They
keep three things true together, under the account row's lock:

- ``Project.seq`` numbers an account's projects in creation order (the list order,
  :data:`LIST_ORDER`), taken from ``Account.project_seq``;
- ``Account.project_count`` counts the account's projects;
- ``ProjectListBucket`` counts them per ``seq // BUCKET_SIZE``, so a page is found from running
  sums over the buckets (:data:`PAGE_START`) instead of an ``OFFSET`` over the whole list.

Parameter names: ``acct`` (account id), ``bkt`` (bucket), ``change`` (projects added, may be
negative) and, in the PostgreSQL create, ``p_<column>`` for the project's own columns.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Executable, Table, bindparam, func, insert, literal, select, true, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from stead.db import utcnow
from stead.identity.models import Account
from stead.projects.models import BUCKET_SIZE, Project, ProjectListBucket

#: The order of project lists (docs/api.md, Pagination: creation time, then id). ``seq`` is
#: handed out under the account row's lock, in the order the projects are created, and
#: ``createdAt`` is stamped after it: creation-time order, with no ties to break.
LIST_ORDER = (Project.seq,)

projects_table = cast(Table, Project.__table__)
accounts_table = cast(Table, Account.__table__)
buckets_table = cast(Table, ProjectListBucket.__table__)

#: The unique index ``uq_projects_account_name_key``: a create whose name is taken inserts nothing.
NAME_KEY_COLUMNS = ("account_id", "name_key")

#: The id of the account's project with a name key; parameters ``account_id``, ``name_key``.
PROJECT_ID_BY_NAME = select(Project.id).where(
    Project.account_id == bindparam("account_id"), Project.name_key == bindparam("name_key")
)

#: One more project in the account: its count and its last seq (the UPDATE locks the row).
ACCOUNT_COUNT_UP = (
    update(accounts_table)
    .where(accounts_table.c.id == bindparam("acct"))
    .values(
        project_count=accounts_table.c.project_count + 1,
        project_seq=accounts_table.c.project_seq + 1,
    )
)
#: :data:`ACCOUNT_COUNT_UP` returning the new project's ``seq``.
TAKE_PROJECT_SEQ = ACCOUNT_COUNT_UP.returning(accounts_table.c.project_seq)
#: One project fewer in the account.
ACCOUNT_COUNT_DOWN = (
    update(accounts_table)
    .where(accounts_table.c.id == bindparam("acct"))
    .values(project_count=accounts_table.c.project_count - 1)
)
_IN_BUCKET = (
    buckets_table.c.account_id == bindparam("acct"),
    buckets_table.c.bucket == bindparam("bkt"),
)
#: Add ``change`` to a bucket's count; returns no row when the bucket has no row yet.
BUCKET_COUNT_CHANGE = (
    update(buckets_table)
    .where(*_IN_BUCKET)
    .values(count=buckets_table.c.count + bindparam("change"))
    .returning(buckets_table.c.bucket)
)
#: A bucket's first row, counting ``change`` projects.
BUCKET_NEW = insert(buckets_table).values(
    account_id=bindparam("acct"), bucket=bindparam("bkt"), count=bindparam("change")
)
#: SQLite: insert the project unless its name is taken (then no row comes back).
PROJECT_INSERT_SQLITE = (
    sqlite_insert(projects_table)
    .on_conflict_do_nothing(index_elements=NAME_KEY_COLUMNS)
    .returning(projects_table.c.id)
)


def postgresql_create(projects: Table) -> Executable:
    """PostgreSQL: one statement takes the account's next ``seq`` (locking the account row),
    counts it into its bucket and inserts the project unless its name is taken, stamped with the
    database's clock after the lock.

    Every column of ``projects`` is inserted: ``account_id``, ``seq``, ``created_at`` and
    ``updated_at`` come from the statement, every other column from the parameter
    ``p_<column>`` (so a column added to the table is inserted without touching this function).
    Parameters ``acct`` and ``p_<column>``; returns ``(seq, created_at)``, or no row when the
    name is taken (the seq and the counts are then rolled back with the transaction).

    Args:
        projects: the projects table (:data:`projects_table`; a test passes a copy with more
            columns).
    """
    now = func.date_trunc("milliseconds", func.clock_timestamp())
    taken = (
        ACCOUNT_COUNT_UP.values(updated_at=now)
        .returning(
            accounts_table.c.project_seq.label("seq"), accounts_table.c.updated_at.label("now")
        )
        .cte("taken")
    )
    counted = postgresql_insert(buckets_table).from_select(
        ["account_id", "bucket", "count", "created_at", "updated_at"],
        select(bindparam("acct"), taken.c.seq // BUCKET_SIZE, literal(1), taken.c.now, taken.c.now),
    )
    counted = counted.on_conflict_do_update(
        index_elements=["account_id", "bucket"],
        set_={"count": buckets_table.c.count + 1, "updated_at": counted.excluded.updated_at},
    )
    # Parameters are not named like the accounts' columns: an UPDATE would SET those.
    from_statement: dict[str, ColumnElement[object]] = {
        "id": bindparam("p_id"),
        "account_id": bindparam("acct"),
        "seq": taken.c.seq,
        "created_at": taken.c.now,
        "updated_at": taken.c.now,
    }
    given = [column for column in projects.columns if column.name not in from_statement]
    row = select(
        *from_statement.values(),
        *(bindparam(f"p_{column.name}", type_=column.type) for column in given),
    )
    return (
        postgresql_insert(projects)
        .from_select([*from_statement, *(column.name for column in given)], row)
        .on_conflict_do_nothing(index_elements=NAME_KEY_COLUMNS)
        .returning(projects.c.seq, projects.c.created_at)
        .add_cte(counted.cte("counted"))
    )


#: :func:`postgresql_create` of the projects table.
PROJECT_CREATE_POSTGRESQL = postgresql_create(projects_table)


def count_into_bucket(
    executor: Session | Connection, *, account_id: str, bucket: int, change: int
) -> None:
    """Add ``change`` projects to an account's list bucket, making its row if it has none.

    The caller holds the account row's lock (its count UPDATE), which makes the insert of a
    missing row race-free. The SQLite create and a bulk load count here; PostgreSQL's create
    counts in its own statement (:func:`postgresql_create`).
    """
    where = {"acct": account_id, "bkt": bucket, "change": change}
    if executor.execute(BUCKET_COUNT_CHANGE, where).first() is None:
        executor.execute(BUCKET_NEW, where)


def insert_project(conn: Connection, values: dict[str, object]) -> dict[str, object] | None:
    """Count a new project into its account and its list bucket, and insert it.

    Args:
        values: every column of the project but ``seq``, ``created_at`` and ``updated_at``.

    Returns:
        ``values`` with ``seq``, ``created_at`` and ``updated_at``, or None when the name is
        taken in the account (the caller's transaction must then be rolled back: the counts
        moved).

    The account row stays locked from the ``seq`` to the commit, which makes ``seq`` creation
    order, ``created_at`` (stamped after the lock) follow it, and a missing bucket row safe to
    insert. On PostgreSQL this is one statement, so the lock is held for one round trip and
    the commit.
    """
    account_id = values["account_id"]
    if conn.dialect.name == "postgresql":
        params = {f"p_{name}": value for name, value in values.items()}
        found = conn.execute(PROJECT_CREATE_POSTGRESQL, {**params, "acct": account_id}).first()
        if found is None:
            return None
        seq, now = found
        return {**values, "seq": seq, "created_at": now, "updated_at": now}
    seq = conn.execute(TAKE_PROJECT_SEQ, {"acct": account_id}).scalar_one()
    count_into_bucket(conn, account_id=str(account_id), bucket=seq // BUCKET_SIZE, change=1)
    now = utcnow()
    row = {**values, "seq": seq, "created_at": now, "updated_at": now}
    return row if conn.execute(PROJECT_INSERT_SQLITE, row).first() is not None else None


def count_out(executor: Session | Connection, *, account_id: str, seq: int) -> None:
    """Count a deleted project (of ``seq``) out of its account and its bucket, account row
    first, in the order :func:`insert_project` locks them."""
    executor.execute(ACCOUNT_COUNT_DOWN, {"acct": account_id})
    where = {"acct": account_id, "bkt": seq // BUCKET_SIZE, "change": -1}
    executor.execute(BUCKET_COUNT_CHANGE, where)


_running = func.sum(ProjectListBucket.count).over(order_by=ProjectListBucket.bucket)
_sums = (
    select(
        ProjectListBucket.bucket,
        (_running - ProjectListBucket.count).label("before"),
        _running.label("through"),
    )
    .where(ProjectListBucket.account_id == bindparam("account_id"))
    .subquery()
)
_first = (
    select(_sums.c.bucket, _sums.c.before)
    .where(_sums.c.through > bindparam("offset"))
    .order_by(_sums.c.bucket)
    .limit(1)
    .subquery()
)
#: Parameters ``account_id`` and ``offset``: the account's ``project_count``, and the first of
#: its list buckets whose running count passes ``offset`` (the bucket holding the list's row
#: ``offset``) with the number of rows in the buckets before it; both None past the list's end.
PAGE_START = (
    select(Account.project_count, _first.c.bucket, _first.c.before)
    .outerjoin_from(Account, _first, true())
    .where(Account.id == bindparam("account_id"))
)
