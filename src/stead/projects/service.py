"""Project rules (docs/api.md, Projects)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, SQLColumnExpression, and_, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, make_transient_to_detached

from stead import audit
from stead.db import new_uuid
from stead.environments.models import Environment
from stead.errors import BadRequest, Conflict
from stead.identity.actor import Actor
from stead.identity.models import Account, ProjectMember
from stead.identity.service import add_member
from stead.pagination import PageParams, paginate
from stead.projects.models import BUCKET_SIZE, Project
from stead.projects.schemas import ProjectCreate, ProjectUpdate
from stead.projects.statements import (
    LIST_ORDER,
    PAGE_START,
    PROJECT_ID_BY_NAME,
    count_out,
    insert_project,
)
from stead.wire import name_key


def _name_taken(executor: Session | Connection, *, account_id: str, name: str) -> str | None:
    """The id of the account's project named ``name`` (case-insensitive), if any."""
    params = {"account_id": account_id, "name_key": name_key(name)}
    return executor.scalar(PROJECT_ID_BY_NAME, params)


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


def create(session: Session, *, actor: Actor, data: ProjectCreate) -> Project:
    """Create a project; a non-Super-Admin creator becomes its ``OWNER``.

    The audit event (which needs nothing from the account) is written first; then the project
    is counted into the account's list and inserted unless its name is taken
    (:func:`stead.projects.statements.insert_project`: the unique index decides, so two creates
    racing for a name get one 201 and one 409). The
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
    values = insert_project(
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


def list_visible(
    session: Session, *, actor: Actor, params: PageParams
) -> tuple[int, list[Project]]:
    """One page of the projects the actor may see: ``(total, projects)``.

    A Super Admin sees every project of the account: one statement
    (:data:`stead.projects.statements.PAGE_START`) reads
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


#: A filtered list counts its matches up to this many, then says "more than".
COUNT_CAP = 1000
#: Above every character: ``key < prefix + PREFIX_END`` ends a prefix's range.
PREFIX_END = "\U0010ffff"


@dataclass(frozen=True)
class ProjectSlice:
    """One page of a keyset-paged project list (:func:`browse`).

    Attributes:
        projects: the page, in list order.
        next_after: the ``after`` cursor of the next page, or None on the last page.
        prev_before: the ``before`` cursor of the previous page, or None on the first page.
        total: how many projects match, or None when more than :data:`COUNT_CAP` do.
        environments: project id -> its number of environments, for the page's projects.
    """

    projects: list[Project]
    next_after: str | None
    prev_before: str | None
    total: int | None
    environments: dict[str, int]


def _sort_key(session: Session, *, searching: bool) -> SQLColumnExpression[Any]:
    """The keyset column: ``seq`` (creation order) for the whole list; the name key for a
    prefix search, compared byte by byte (PostgreSQL: ``COLLATE "C"``, the order of the
    index ``ix_projects_account_name_c``; SQLite compares bytes anyway), so a prefix is one
    range of the index."""
    if not searching:
        return Project.seq
    if session.get_bind().dialect.name == "postgresql":
        return Project.name_key.collate("C")
    return Project.name_key


def _cursor(value: str, *, searching: bool, field: str) -> str | int:
    if searching:
        return value
    try:
        return int(value)
    except ValueError:
        raise BadRequest(
            f"{field} is not a valid cursor", violations=[f"{field}: not a valid cursor"]
        ) from None


def browse(
    session: Session,
    *,
    actor: Actor,
    q: str | None = None,
    after: str | None = None,
    before: str | None = None,
    last: bool = False,
    size: int = 50,
) -> ProjectSlice:
    """A page of the projects the actor may see (:func:`visible_query`), keyset-paged.

    Without ``q`` the list is in creation order; with ``q`` it holds the projects whose name
    starts with ``q`` (compared like names are: NFC, case-folded), in name-key order. ``after``
    (the previous page's ``next_after``) gives the page after it, ``before`` the page before,
    ``last`` the last page; none of them the first page. Each page costs an index range scan
    of ``size`` + 1 rows, wherever it is in the list.

    Raises:
        BadRequest: ``after`` or ``before`` is not a cursor of this list.
    """
    searching = bool(q)
    key = _sort_key(session, searching=searching)
    query = visible_query(actor).order_by(None)
    if q:
        prefix = name_key(q)
        query = query.where(and_(key >= prefix, key < prefix + PREFIX_END))
    filtered = query
    backwards = last or before is not None
    if after is not None:
        query = query.where(key > _cursor(after, searching=searching, field="after"))
    elif before is not None:
        query = query.where(key < _cursor(before, searching=searching, field="before"))
    query = query.order_by(key.desc() if backwards else key).limit(size + 1)
    rows = list(session.scalars(query))
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()

    def key_of(project: Project) -> str:
        return project.name_key if searching else str(project.seq)

    has_next = (more and not backwards) or (backwards and not last and bool(rows))
    has_prev = (more and backwards) or (after is not None and bool(rows))
    return ProjectSlice(
        projects=rows,
        next_after=key_of(rows[-1]) if rows and has_next else None,
        prev_before=key_of(rows[0]) if rows and has_prev else None,
        total=_count(session, actor=actor, filtered=filtered, searching=searching),
        environments=_environment_counts(session, [p.id for p in rows]),
    )


def _count(
    session: Session, *, actor: Actor, filtered: Select[Project], searching: bool
) -> int | None:
    """How many projects ``filtered`` holds, or None above :data:`COUNT_CAP` (counting stops
    there). A Super Admin's whole list is the account's maintained count."""
    if actor.is_super_admin and not searching:
        total: int = session.scalars(
            select(Account.project_count).where(Account.id == actor.account_id)
        ).one()
    else:
        # Only indexed columns: the count reads the index, not the table.
        capped = filtered.with_only_columns(Project.name_key).limit(COUNT_CAP + 1).subquery()
        total = session.scalars(select(func.count()).select_from(capped)).one()
    return None if total > COUNT_CAP and (searching or not actor.is_super_admin) else total


def _environment_counts(session: Session, project_ids: list[str]) -> dict[str, int]:
    if not project_ids:
        return {}
    rows = session.execute(
        select(Environment.project_id, func.count())
        .where(Environment.project_id.in_(project_ids))
        .group_by(Environment.project_id)
    )
    return {project_id: count for project_id, count in rows}


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
    """Delete a project and everything under it in this transaction (docs/api.md, Projects)."""
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
    count_out(session, account_id=project.account_id, seq=project.seq)
