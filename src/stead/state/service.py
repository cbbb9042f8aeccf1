"""Reading many projects' state at once (docs/api.md, Project state).

A page of projects costs a fixed number of statements (one per kind of object, each over the
whole page), not a number per project. What the caller sees is decided exactly as by the
single-object routes: only visible projects (docs/permissions.md), and environment settings
only where the caller's access level grants ``environment.read``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stead.connections.models import Connection
from stead.connections.schemas import ConnectionRead
from stead.db import utcnow
from stead.environments.models import Environment
from stead.environments.routes import environment_read
from stead.errors import BadRequest
from stead.identity.actor import Actor
from stead.identity.members import access_read, member_read, names_of
from stead.identity.models import EnvironmentAccess, Invitation, ProjectMember
from stead.identity.permissions import environment_allows, environment_level, project_allows
from stead.identity.schemas import EnvironmentAccessRead, InvitationRead
from stead.pagination import PageParams, paginate
from stead.projects.models import Project
from stead.projects.schemas import ProjectRead
from stead.projects.service import visible_query
from stead.repositories.models import Repository
from stead.repositories.schemas import RepositoryRead
from stead.secrets.models import HostedSecret, SecretReference
from stead.secrets.schemas import HostedSecretRead, SecretReferenceRead
from stead.state.schemas import ProjectStateRead
from stead.wire import lookup_key

#: Most names plus ids one request may filter by (a URL stays well under common limits).
MAX_FILTERS = 200


def read(
    session: Session,
    *,
    actor: Actor,
    names: Sequence[str],
    project_ids: Sequence[str],
    params: PageParams,
) -> tuple[int, list[ProjectStateRead]]:
    """One page of the visible projects' states, in list order: ``(total, states)``.

    ``names`` (compared as names are, case-insensitively) and ``project_ids`` (canonical UUIDs)
    narrow the projects to those matching either; both empty means every visible project. A
    name or id that matches no visible project is simply absent, as it would be a 404.

    Raises:
        BadRequest: more than :data:`MAX_FILTERS` names and ids together.
    """
    if len(names) + len(project_ids) > MAX_FILTERS:
        raise BadRequest(
            f"at most {MAX_FILTERS} names and project ids per request",
            violations=[f"name: at most {MAX_FILTERS} names and project ids together"],
        )
    query = visible_query(actor)
    if names or project_ids:
        keys = [k for k in (lookup_key(n) for n in names) if k is not None]
        query = query.where(Project.name_key.in_(keys) | Project.id.in_(project_ids))
    total, projects = paginate(session, query, params)
    return total, states(session, actor=actor, projects=projects)


def _by_project(rows: Iterable[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        out[row.project_id].append(row)
    return out


def states(
    session: Session, *, actor: Actor, projects: Sequence[Project]
) -> list[ProjectStateRead]:
    """The state of each of ``projects`` (which ``actor`` may see), in the given order: its
    connections, secret references, hosted secrets, repository and members; the environments
    whose settings ``actor`` may read (the others by name in ``hiddenEnvironments``) with the
    access levels set for users; and the pending invitations where ``actor`` may manage
    members (else None). A fixed number of statements, whatever the number of projects."""
    ids = [p.id for p in projects]
    if not ids:
        return []

    def rows(model: Any) -> dict[str, list[Any]]:
        query = select(model).where(model.project_id.in_(ids))
        if hasattr(model, "created_at"):
            query = query.order_by(model.created_at, model.id)
        return _by_project(session.scalars(query))

    connections, references, secrets = rows(Connection), rows(SecretReference), rows(HostedSecret)
    environments, repositories = rows(Environment), rows(Repository)
    roles = _roles(session, actor=actor, project_ids=ids)
    members = rows(ProjectMember)
    invitations = _by_project(
        session.scalars(
            select(Invitation)
            .where(
                Invitation.project_id.in_(ids),
                Invitation.accepted_at.is_(None),
                Invitation.expires_at > utcnow(),
            )
            .order_by(Invitation.created_at, Invitation.id)
        )
    )
    access: dict[int, list[EnvironmentAccess]] = defaultdict(list)
    for row in session.scalars(
        select(EnvironmentAccess)
        .where(
            EnvironmentAccess.environment_id.in_([e.id for es in environments.values() for e in es])
        )
        .order_by(EnvironmentAccess.created_at, EnvironmentAccess.id)
    ):
        access[row.environment_id].append(row)
    # the caller's own level per environment decides what it may read, as on a single GET
    user_levels = {
        a.environment_id: a.access_level
        for levels in access.values()
        for a in levels
        if actor.type == "user" and a.user_id == actor.id
    }
    names = names_of(
        session,
        ids=[m.principal_id for ms in members.values() for m in ms]
        + [a.user_id for levels in access.values() for a in levels],
    )
    out = []
    for project in projects:
        readable, hidden = [], []
        levels: dict[str, list[EnvironmentAccessRead]] = {}
        for env in environments[project.id]:
            level = environment_level(
                project_role=roles.get(project.id),
                is_user=actor.type == "user",
                user_level=user_levels.get(env.id),
                default_level=env.default_user_access_level,
            )
            if environment_allows(level, "environment.read"):
                readable.append(environment_read(env))
                levels[env.name] = [
                    access_read(a, names.get(a.user_id, "")) for a in access[env.id]
                ]
            else:
                hidden.append(env.name)
        repository = next(iter(repositories[project.id]), None)
        manager = project_allows(roles.get(project.id), "member.manage")
        out.append(
            ProjectStateRead(
                project=ProjectRead.model_validate(project),
                connections=[ConnectionRead.model_validate(c) for c in connections[project.id]],
                secret_references=[
                    SecretReferenceRead.model_validate(r) for r in references[project.id]
                ],
                secrets=[HostedSecretRead.model_validate(s) for s in secrets[project.id]],
                environments=readable,
                hidden_environments=hidden,
                repository=None
                if repository is None
                else RepositoryRead.model_validate(repository),
                members=[
                    member_read(m, names.get(m.principal_id, "")) for m in members[project.id]
                ],
                invitations=[InvitationRead.model_validate(i) for i in invitations[project.id]]
                if manager
                else None,
                environment_access=levels,
            )
        )
    return out


def _roles(session: Session, *, actor: Actor, project_ids: list[str]) -> dict[str, str]:
    """The actor's role in each project (``OWNER`` everywhere for a Super Admin)."""
    if actor.is_super_admin:
        return dict.fromkeys(project_ids, "OWNER")
    return dict(
        session.execute(
            select(ProjectMember.project_id, ProjectMember.role).where(
                ProjectMember.project_id.in_(project_ids),
                ProjectMember.principal_type == actor.type,
                ProjectMember.principal_id == actor.id,
            )
        ).all()
    )
