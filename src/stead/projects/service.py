"""Project rules (contract section 2)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Executable, Select, Table, bindparam, func, literal, select, true
from sqlalchemy import insert as sql_insert
from sqlalchemy import update as sql_update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, make_transient_to_detached

from stead import audit
from stead.db import new_uuid, utcnow
from stead.errors import Conflict
from stead.identity.actor import Actor
from stead.identity.models import Account, ProjectMember
from stead.identity.service import add_member
from stead.pagination import PageParams, paginate
from stead.projects.models import BUCKET_SIZE, Project, ProjectListBucket
from stead.projects.schemas import ProjectCreate, ProjectUpdate
from stead.wire import name_key

#: The order of project lists (contract section 1: creation time, then id). ``seq`` is handed
#: out under the account row's lock, in the order the projects are created, and ``createdAt`` is
#: stamped after it: creation-time order, with no ties to break.
LIST_ORDER = (Project.seq,)


#: The project holding a name in an account, built once (bind parameters per call).
_NAMED = select(Project.id).where(
    Project.account_id == bindparam("account_id"), Project.name_key == bindparam("name_key")
)


def _name_taken(executor: Session | Connection, *, account_id: str, name: str) -> str | None:
    """The id of the account's project named ``name`` (case-insensitive), if any."""
    return executor.scalar(_NAMED, {"account_id": account_id, "name_key": name_key(name)})


def _conflict(name: str, existing: str | None) -> Conflict:
    """409 for a taken project name; ``existingId`` names the holder when it is still there."""
    if existing is None:  # taken by a project deleted since: the create may be retried
        return Conflict(
            f"A project named {name!r} was being changed concurrently; retry",
            violations=["name: used by a concurrent change"],
        )
    return Conflict(
        f"A project named {name!r} already exists",
        violations=[f"name: already used by project {existing}"],
        extra={"existingId": existing},
    )


_projects = cast(Table, Project.__table__)
_accounts = cast(Table, Account.__table__)
_buckets = cast(Table, ProjectListBucket.__table__)
_in_bucket = (_buckets.c.account_id == bindparam("acct"), _buckets.c.bucket == bindparam("bkt"))
_NAME_KEY = ("account_id", "name_key")  # the unique index uq_projects_account_name_key
# Plain table statements (no ORM bookkeeping), built once; parameters ``acct`` (account id),
# ``bkt`` (bucket), ``change`` and the project's columns.
#: One more project in the account: its count and last seq (the UPDATE locks the account's row).
_COUNT_IN = (
    sql_update(_accounts)
    .where(_accounts.c.id == bindparam("acct"))
    .values(project_count=_accounts.c.project_count + 1, project_seq=_accounts.c.project_seq + 1)
)
_TAKE_SEQ = _COUNT_IN.returning(_accounts.c.project_seq)
_UNCOUNT = (
    sql_update(_accounts)
    .where(_accounts.c.id == bindparam("acct"))
    .values(project_count=_accounts.c.project_count - 1)
)
_BUMP_BUCKET = (
    sql_update(_buckets)
    .where(*_in_bucket)
    .values(count=_buckets.c.count + bindparam("change"))
    .returning(_buckets.c.bucket)
)
_NEW_BUCKET = sql_insert(_buckets).values(
    account_id=bindparam("acct"), bucket=bindparam("bkt"), count=bindparam("change")
)
#: SQLite: insert the project unless its name is taken (then no row comes back).
_INSERT_SQLITE = (
    sqlite_insert(_projects)
    .on_conflict_do_nothing(index_elements=_NAME_KEY)
    .returning(_projects.c.id)
)


def _postgresql_create() -> Executable:
    """PostgreSQL: one statement takes the account's next ``seq`` (locking the account row),
    counts it into its bucket and inserts the project unless its name is taken, stamped with the
    database's clock after the lock. Parameters ``acct`` and ``p_<column>`` for the project's
    columns except ``seq``, ``created_at`` and ``updated_at``; returns ``(seq, created_at)``, or
    no row when the name is taken (the seq and the counts are then rolled back with the
    transaction)."""
    now = func.date_trunc("milliseconds", func.clock_timestamp())
    taken = (
        _COUNT_IN.values(updated_at=now)
        .returning(_accounts.c.project_seq.label("seq"), _accounts.c.updated_at.label("now"))
        .cte("taken")
    )
    counted = pg_insert(_buckets).from_select(
        ["account_id", "bucket", "count", "created_at", "updated_at"],
        select(bindparam("acct"), taken.c.seq // BUCKET_SIZE, literal(1), taken.c.now, taken.c.now),
    )
    counted = counted.on_conflict_do_update(
        index_elements=["account_id", "bucket"],
        set_={"count": _buckets.c.count + 1, "updated_at": counted.excluded.updated_at},
    )
    columns = ["name", "name_key", "description", "warehouse", "agent_deployment_type"]
    # Parameters not named like the accounts' columns: an UPDATE would SET those.
    row = select(
        bindparam("p_id"),
        bindparam("acct"),
        taken.c.seq,
        taken.c.now,
        taken.c.now,
        *(bindparam(f"p_{name}", type_=_projects.c[name].type) for name in columns),
    )
    return (
        pg_insert(_projects)
        .from_select(["id", "account_id", "seq", "created_at", "updated_at", *columns], row)
        .on_conflict_do_nothing(index_elements=_NAME_KEY)
        .returning(_projects.c.seq, _projects.c.created_at)
        .add_cte(counted.cte("counted"))
    )


_CREATE_POSTGRESQL = _postgresql_create()


def count_into_bucket(
    executor: Session | Connection, *, account_id: str, bucket: int, change: int
) -> None:
    """Add ``change`` projects to an account's list bucket, making its row if it has none.

    The caller holds the account row's lock (its count UPDATE), which makes the insert of a
    missing row race-free. The SQLite create and a bulk load count here; PostgreSQL's create
    counts in its own statement (:func:`_postgresql_create`).
    """
    where = {"acct": account_id, "bkt": bucket, "change": change}
    if executor.execute(_BUMP_BUCKET, where).first() is None:
        executor.execute(_NEW_BUCKET, where)


def _insert(conn: Connection, values: dict[str, object]) -> dict[str, object] | None:
    """Count a new project into its account and its list bucket, and insert it; return the
    row's values with ``seq``, ``created_at`` and ``updated_at``, or None when its name is
    taken in the account (the caller's transaction must then be rolled back: the counts moved).

    The account row stays locked from the ``seq`` to the commit, which makes ``seq`` creation
    order, ``created_at`` (stamped after the lock) follow it, and a missing bucket row safe to
    insert. On PostgreSQL this is one statement, so the lock is held for one round trip and
    the commit.
    """
    account_id = values["account_id"]
    if conn.dialect.name == "postgresql":
        params = {f"p_{name}": value for name, value in values.items()}
        found = conn.execute(_CREATE_POSTGRESQL, {**params, "acct": account_id}).first()
        if found is None:
            return None
        seq, now = found
        return {**values, "seq": seq, "created_at": now, "updated_at": now}
    seq = conn.execute(_TAKE_SEQ, {"acct": account_id}).scalar_one()
    count_into_bucket(conn, account_id=str(account_id), bucket=seq // BUCKET_SIZE, change=1)
    now = utcnow()
    row = {**values, "seq": seq, "created_at": now, "updated_at": now}
    return row if conn.execute(_INSERT_SQLITE, row).first() is not None else None


def create(session: Session, *, actor: Actor, data: ProjectCreate) -> Project:
    """Create a project; a non-Super-Admin creator becomes its ``OWNER``.

    The audit event (which needs nothing from the account) is written first; then the project
    is counted into the account's list and inserted unless its name is taken (:func:`_insert`:
    the unique index decides, so two creates racing for a name get one 201 and one 409). The
    account row stays locked from then to the commit, so the account's creates run one after
    another, each stamped later than the one before.

    The rows are written with plain table statements on the session's connection (the ORM's
    unit of work cost more Python time than the statements); the returned project is attached to
    the session as if loaded (SQLAlchemy ``make_transient_to_detached``), so callers can go on
    using it through the ORM.

    Raises:
        Conflict: the name is taken in the account (case-insensitive); body carries
            ``existingId``. The session's transaction must be rolled back (the route's session
            does so for every error).
    """
    conn = session.connection()
    project_id = new_uuid()
    audit.record(
        session,
        actor=actor,
        action="project.created",
        target_type="project",
        target_id=project_id,
        project_id=project_id,
        details={"name": data.name, "warehouse": data.warehouse},
    )
    values = _insert(
        conn,
        {
            "id": project_id,
            "account_id": actor.account_id,
            "name": data.name,
            "name_key": name_key(data.name),
            "description": data.description,
            "warehouse": data.warehouse,
            "agent_deployment_type": data.agent_deployment_type,
        },
    )
    if values is None:
        raise _conflict(data.name, _name_taken(conn, account_id=actor.account_id, name=data.name))
    project = Project(**values)
    make_transient_to_detached(project)
    session.add(project)
    if not actor.is_super_admin:
        add_member(session, project_id=project.id, actor=actor, role="OWNER")
    return project


def _remove_from_list(session: Session, *, project: Project) -> None:
    """Count a deleted project out of its account and its bucket (account row first, as
    :func:`_add_to_list` locks them)."""
    session.execute(_UNCOUNT, {"acct": project.account_id})
    where = {"acct": project.account_id, "bkt": project.seq // BUCKET_SIZE, "change": -1}
    session.execute(_BUMP_BUCKET, where)


def visible_query(actor: Actor) -> Select[Project]:
    """Projects the actor may see, in list order (:data:`LIST_ORDER`)."""
    query = select(Project).where(Project.account_id == actor.account_id)
    if not actor.is_super_admin:
        query = query.where(
            Project.id.in_(
                select(ProjectMember.project_id).where(
                    ProjectMember.principal_type == actor.type,
                    ProjectMember.principal_id == actor.id,
                )
            )
        )
    return query.order_by(*LIST_ORDER)


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
#: Built once: the per-request cost is binding two values.
PAGE_START = (
    select(Account.project_count, _first.c.bucket, _first.c.before)
    .outerjoin_from(Account, _first, true())
    .where(Account.id == bindparam("account_id"))
)


def list_visible(
    session: Session, *, actor: Actor, params: PageParams
) -> tuple[int, list[Project]]:
    """One page of the projects the actor may see: ``(total, projects)``.

    A Super Admin sees every project of the account: one statement (:data:`PAGE_START`) reads
    the account's maintained count and finds the page's bucket, so the page's ``OFFSET`` walks
    fewer than ``BUCKET_SIZE`` rows and every page costs about the same however long the list.
    Other principals' lists are bounded by their memberships and paged with a plain ``OFFSET``.
    """
    query = visible_query(actor)
    if not actor.is_super_admin:
        return paginate(session, query, params)
    offset = params.page * params.size
    start = {"account_id": actor.account_id, "offset": offset}
    total, bucket, before = session.execute(PAGE_START, start).one()
    if bucket is None:
        return total, []
    page = query.where(Project.seq >= bucket * BUCKET_SIZE)
    return total, list(session.scalars(page.limit(params.size).offset(offset - before)))


def update(session: Session, *, actor: Actor, project: Project, data: ProjectUpdate) -> Project:
    """Rename or re-describe a project. Raises Conflict if the new name is taken."""
    changes = data.model_dump(exclude_unset=True)
    if changes.get("name") is not None and changes["name"] != project.name:
        existing = _name_taken(session, account_id=project.account_id, name=changes["name"])
        if existing not in (None, project.id):
            raise _conflict(changes["name"], existing)
        project.name = changes["name"]
        project.name_key = name_key(changes["name"])
    if "description" in changes:
        project.description = changes["description"]
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="project.updated",
        target_type="project",
        target_id=project.id,
        project_id=project.id,
        details={"fields": sorted(changes)},
    )
    return project


def delete(session: Session, *, actor: Actor, project: Project) -> None:
    """Delete a project and everything under it in this transaction (contract section 2)."""
    audit.record(
        session,
        actor=actor,
        action="project.deleted",
        target_type="project",
        target_id=project.id,
        project_id=project.id,
        details={"name": project.name},
    )
    session.delete(project)
    session.flush()
    _remove_from_list(session, project=project)
