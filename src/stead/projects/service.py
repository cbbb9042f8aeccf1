"""Project rules (contract section 2)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Select, Table, bindparam, func, select, true
from sqlalchemy import insert as sql_insert
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from stead import audit
from stead.db import utcnow
from stead.errors import Conflict
from stead.identity.models import Account, ProjectMember
from stead.identity.service import Actor, add_member
from stead.pagination import PageParams, paginate
from stead.projects.models import BUCKET_SIZE, Project, ProjectListBucket
from stead.projects.schemas import ProjectCreate, ProjectUpdate
from stead.wire import name_key

#: The order of project lists (contract section 1: creation time, then id). ``seq`` is handed
#: out under the account row's lock, in the order the projects are created, and ``createdAt`` is
#: stamped after it: creation-time order, with no ties to break.
LIST_ORDER = (Project.seq,)


def _ensure_name_free(
    session: Session, *, account_id: str, name: str, exclude: str | None = None
) -> None:
    existing = session.scalar(
        select(Project.id).where(
            Project.account_id == account_id, Project.name_key == name_key(name)
        )
    )
    if existing is not None and existing != exclude:
        raise Conflict(
            f"A project named {name!r} already exists",
            violations=[f"name: already used by project {existing}"],
            extra={"existingId": existing},
        )


def create(session: Session, *, actor: Actor, data: ProjectCreate) -> Project:
    """Create a project; a non-Super-Admin creator becomes its ``OWNER``.

    The account row stays locked from the project's ``seq`` to the commit, so the account's
    creates run one after another, each stamped later than the one before.

    Raises:
        Conflict: the name is taken in the account (case-insensitive); body carries ``existingId``.
    """
    _ensure_name_free(session, account_id=actor.account_id, name=data.name)
    seq = _add_to_list(session, account_id=actor.account_id)
    project = Project(
        account_id=actor.account_id,
        seq=seq,
        created_at=utcnow(),
        name=data.name,
        name_key=name_key(data.name),
        description=data.description,
        warehouse=data.warehouse,
        agent_deployment_type=data.agent_deployment_type,
    )
    session.add(project)
    session.flush()
    if not actor.is_super_admin:
        add_member(session, project_id=project.id, actor=actor, role="OWNER")
    audit.record(
        session,
        actor=actor,
        action="project.created",
        target_type="project",
        target_id=project.id,
        project_id=project.id,
        details={"name": project.name, "warehouse": project.warehouse},
    )
    return project


def _add_to_list(session: Session, *, account_id: str) -> int:
    """Count a new project into its account and its bucket; return the project's ``seq``.

    The account's UPDATE locks its row until the commit, which makes ``seq`` creation order and
    lets a missing bucket row be inserted without a race. Plain table statements, no ORM
    bookkeeping.
    """
    accounts = cast(Table, Account.__table__)
    seq: int = session.execute(
        sql_update(accounts)
        .where(accounts.c.id == account_id)
        .values(
            project_count=accounts.c.project_count + 1,
            project_seq=accounts.c.project_seq + 1,
        )
        .returning(accounts.c.project_seq)
    ).scalar_one()
    if not _bump_bucket(session, account_id=account_id, seq=seq, change=1):
        buckets = cast(Table, ProjectListBucket.__table__)
        session.execute(
            sql_insert(buckets).values(account_id=account_id, bucket=seq // BUCKET_SIZE, count=1)
        )
    return seq


def _remove_from_list(session: Session, *, project: Project) -> None:
    """Count a deleted project out of its account and its bucket (account row first, as
    :func:`_add_to_list` locks them)."""
    accounts = cast(Table, Account.__table__)
    session.execute(
        sql_update(accounts)
        .where(accounts.c.id == project.account_id)
        .values(project_count=accounts.c.project_count - 1)
    )
    _bump_bucket(session, account_id=project.account_id, seq=project.seq, change=-1)


def _bump_bucket(session: Session, *, account_id: str, seq: int, change: int) -> bool:
    """Add ``change`` to the count of ``seq``'s bucket; False if the bucket has no row yet."""
    buckets = cast(Table, ProjectListBucket.__table__)
    changed = session.execute(
        sql_update(buckets)
        .where(buckets.c.account_id == account_id, buckets.c.bucket == seq // BUCKET_SIZE)
        .values(count=buckets.c.count + change)
        .returning(buckets.c.bucket)
    ).first()
    return changed is not None


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
        _ensure_name_free(
            session, account_id=project.account_id, name=changes["name"], exclude=project.id
        )
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
