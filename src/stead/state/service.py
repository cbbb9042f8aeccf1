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
from stead.environments.models import Environment
from stead.environments.routes import environment_read
from stead.errors import BadRequest
from stead.identity.actor import Actor
from stead.identity.models import EnvironmentAccess, ProjectMember
from stead.identity.permissions import environment_allows, environment_level
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
    connections, secret references, hosted secrets and repository, and the environments whose
    settings ``actor`` may read (the others by name in ``hiddenEnvironments``)."""
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
    user_levels: dict[int, str] = {}
    if actor.type == "user":
        env_ids = [e.id for envs in environments.values() for e in envs]
        user_levels = dict(
            session.execute(
                select(EnvironmentAccess.environment_id, EnvironmentAccess.access_level).where(
                    EnvironmentAccess.environment_id.in_(env_ids),
                    EnvironmentAccess.user_id == actor.id,
                )
            ).all()
        )
    out = []
    for project in projects:
        readable, hidden = [], []
        for env in environments[project.id]:
            level = environment_level(
                project_role=roles.get(project.id),
                is_user=actor.type == "user",
                user_level=user_levels.get(env.id),
                default_level=env.default_user_access_level,
            )
            if environment_allows(level, "environment.read"):
                readable.append(environment_read(env))
            else:
                hidden.append(env.name)
        repository = next(iter(repositories[project.id]), None)
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
