"""Project rules (contract section 2)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Select, Table, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from stead import audit
from stead.errors import Conflict
from stead.identity.models import Account, ProjectMember
from stead.identity.service import Actor, add_member
from stead.pagination import PageParams, paginate
from stead.projects.models import Project
from stead.projects.schemas import ProjectCreate, ProjectUpdate
from stead.wire import name_key

#: The order of project lists (contract section 1: creation time, then id).
LIST_ORDER = (Project.created_at, Project.id)


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

    Raises:
        Conflict: the name is taken in the account (case-insensitive); body carries ``existingId``.
    """
    _ensure_name_free(session, account_id=actor.account_id, name=data.name)
    project = Project(
        account_id=actor.account_id,
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
    _count(session, account_id=actor.account_id, change=1)
    return project


def _count(session: Session, *, account_id: str, change: int) -> None:
    """Keep ``Account.project_count`` equal to the account's projects (last statement before
    the commit, so the account row is locked for as short a time as possible; a plain table
    UPDATE, no ORM bookkeeping)."""
    accounts = cast(Table, Account.__table__)
    session.execute(
        sql_update(accounts)
        .where(accounts.c.id == account_id)
        .values(project_count=accounts.c.project_count + change)
    )


def visible_query(actor: Actor) -> Select[Project]:
    """Projects the actor may see, in stable order (creation time, then id)."""
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
    """One page of the projects the actor may see: ``(total, projects)``. For a Super Admin,
    who sees every project of the account, ``total`` is the account's maintained count."""
    total = None
    if actor.is_super_admin:
        total = session.scalar(select(Account.project_count).where(Account.id == actor.account_id))
    return paginate(session, visible_query(actor), params, total=total, order=LIST_ORDER)


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
    _count(session, account_id=project.account_id, change=-1)
