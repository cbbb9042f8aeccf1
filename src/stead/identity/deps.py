"""Authentication and permission dependencies: routes declare what they need, never check it.

``ActorDep`` authenticates the bearer token. ``ProjectReader`` / ``ProjectWriter`` /
``ProjectUpdater`` / ``ProjectDeleter`` load the path's project and check the caller's role in
it: an invisible project answers 404, exactly like an unknown one (contract section 1); a visible
one the caller may not change answers 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from stead.db import SessionDep
from stead.errors import BadRequest, Forbidden, NotFound, Unauthorized
from stead.identity.permissions import account_allows, project_allows
from stead.identity.service import Actor, actor_from_token, project_role
from stead.projects.models import Project


def current_actor(request: Request, session: SessionDep) -> Actor:
    """Authenticate ``Authorization: Bearer <JWT>`` (contract section 1).

    Raises:
        Unauthorized: header missing, not Bearer, or the token is invalid or expired.
        TooManyRequests: the client is over its rate limit (contract section 1).
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("A bearer token is required (Authorization: Bearer <token>)")
    actor = actor_from_token(session, token=token.strip(), key=request.app.state.signing_key)
    request.state.actor = actor
    request.app.state.rate_limiter.hit(actor.id)
    return actor


ActorDep = Annotated[Actor, Depends(current_actor)]


def parse_uuid(value: str, *, field: str) -> str:
    """Return the canonical lower-case form of a UUID path parameter.

    Raises:
        BadRequest: ``value`` is not a UUID (contract section 1: a malformed id in a path is 400).
    """
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadRequest(
            f"{field} is not a valid UUID", violations=[f"{field}: not a valid UUID"]
        ) from None


def require_account(permission: str) -> Callable[[Actor], Actor]:
    """Dependency factory: the actor's account role must grant ``permission``, else 403."""

    def dependency(actor: ActorDep) -> Actor:
        if not account_allows(actor.role, permission):
            raise Forbidden(f"Your role {actor.role} may not do this ({permission})")
        return actor

    return dependency


@dataclass(frozen=True)
class ProjectContext:
    """The caller, the project of the path, and the caller's role in it."""

    actor: Actor
    project: Project
    role: str


def _project_context(permission: str) -> Callable[..., ProjectContext]:
    def dependency(
        actor: ActorDep,
        session: SessionDep,
        project_id: Annotated[str, Path(alias="projectId", description="project UUID")],
    ) -> ProjectContext:
        pid = parse_uuid(project_id, field="projectId")
        project = session.get(Project, pid)
        role = project_role(session, actor=actor, project_id=pid) if project else None
        if (
            project is None
            or project.account_id != actor.account_id
            or not project_allows(role, "project.read")
        ):
            raise NotFound(f"Project {pid} not found")
        if not project_allows(role, permission):
            raise Forbidden(f"Your project role {role} may not do this ({permission})")
        assert role is not None
        return ProjectContext(actor=actor, project=project, role=role)

    return dependency


ProjectReader = Annotated[ProjectContext, Depends(_project_context("project.read"))]
ProjectWriter = Annotated[ProjectContext, Depends(_project_context("project.write"))]
ProjectUpdater = Annotated[ProjectContext, Depends(_project_context("project.update"))]
ProjectDeleter = Annotated[ProjectContext, Depends(_project_context("project.delete"))]
ProjectCreator = Annotated[Actor, Depends(require_account("project.create"))]
AgentReader = Annotated[Actor, Depends(require_account("agent.read"))]
AgentWriter = Annotated[Actor, Depends(require_account("agent.write"))]
