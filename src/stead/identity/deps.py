"""Authentication and permission dependencies: routes declare what they need, never check it.

``ActorDep`` authenticates the bearer token. ``ProjectReader`` / ``ProjectWriter`` /
``ProjectUpdater`` / ``ProjectDeleter`` / ``MemberReader`` / ``MemberManager`` /
``ProjectAuditor`` load the path's project and check the caller's role in it: an invisible
project answers 404, exactly like an unknown one (docs/api.md); a visible one the caller
may not change answers 403. ``EnvironmentReader`` / ``EnvironmentRunner`` / ``EnvironmentAdmin``
also load the path's environment and check the caller's access level in it. Account-wide
permissions (``ProjectCreator``, ``AgentWriter``, ``ApiClientManager`` ...) answer 403.

:data:`REQUIREMENTS` maps each permission-checking dependency to its ``(scope, permission)``, so
tests and documentation can read which permission every route needs.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from stead.audit.service import AuditFilter
from stead.environments import service as environment_service
from stead.environments.models import Environment
from stead.errors import BadRequest, NotFound, Unauthorized
from stead.identity.actor import Actor
from stead.identity.models import ProjectMember
from stead.identity.permissions import (
    PROJECT_PERMISSIONS,
    PermissionDenied,
    account_allows,
    environment_allows,
    project_allows,
)
from stead.identity.service import (
    ActorCache,
    TokenClaims,
    access_level,
    load_actor,
    project_role,
)
from stead.pipeline.admission import admit
from stead.pipeline.ratelimit import RateLimiter
from stead.pipeline.transaction import SessionDep, run_read
from stead.projects.models import Project

#: Permission-checking dependency -> ``(scope, permission)``; scope is ``account``, ``project``,
#: ``environment`` or ``audit``.
REQUIREMENTS: dict[Callable[..., Any], tuple[str, str]] = {}


def request_origin(request: Request) -> dict[str, str | None]:
    """The request's id and client address, as ``request_id`` and ``source_ip``: what
    :meth:`Actor.with_request` takes and audit events written without an actor record."""
    return {
        "request_id": getattr(request.state, "request_id", None),
        "source_ip": request.client.host if request.client else None,
    }


def _load_actor(factory: sessionmaker[Session], claims: TokenClaims) -> Actor:
    with factory() as session:
        return load_actor(session, claims)


#: The bearer scheme as the OpenAPI document declares it (``components.securitySchemes``), so
#: every route that authenticates says so and ``/docs`` can send a token.
BEARER = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="JWT",
    description="An access token from POST /oauth/dpc/token (docs/api.md, Authentication).",
    auto_error=False,
)


async def current_actor(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> Actor:
    """Authenticate ``Authorization: Bearer <JWT>`` (docs/api.md, Authentication).

    ``_declared`` only declares :data:`BEARER` in the OpenAPI document; the header is read here,
    so a direct call with the request alone (the idempotency dependency) authenticates the same.

    The token is verified on the event loop; its principal comes from the app's
    :class:`ActorCache` or, on a miss, from the database in a worker thread. The actor carries
    the request's id and client address for audit events. A second call in the same request
    returns the first one's actor (the request is counted once against the rate limit). Then
    the request enters admission control (:func:`stead.pipeline.admission.admit`): nothing
    before authentication waits in, or holds, a slot.

    Raises:
        Unauthorized: header missing, not Bearer, or the token is invalid or expired, or its
            principal was revoked or removed.
        TooManyRequests: the client is over its rate limit (docs/api.md).
    """
    known: Actor | None = getattr(request.state, "actor", None)
    if known is not None:
        return known
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("A bearer token is required (Authorization: Bearer <token>)")
    state = request.app.state
    cache: ActorCache = state.actor_cache
    claims = cache.verify(token.strip(), key=state.signing_key)
    actor = cache.get(claims)
    if actor is None:
        actor = await run_in_threadpool(_load_actor, state.sessionmaker, claims)
        cache.put(claims, actor)
    actor = actor.with_request(**request_origin(request))
    request.state.actor = actor
    limiter: RateLimiter = state.rate_limiter
    if not limiter.hit_local(actor.id):  # a new lease is needed: the database, in a thread
        await run_in_threadpool(limiter.hit, actor.id)
    await admit(request.scope)
    return actor


ActorDep = Annotated[Actor, Depends(current_actor)]


async def optional_actor(request: Request) -> Actor | None:
    """:func:`current_actor` when the request has an ``Authorization`` header, else None (for
    routes a caller may use before having an account, such as accepting an invitation).

    Raises:
        Unauthorized: a header is present but its token is not valid.
    """
    if "authorization" not in request.headers:
        return None
    return await current_actor(request)


OptionalActorDep = Annotated[Actor | None, Depends(optional_actor)]


def parse_uuid(value: str, *, field: str) -> str:
    """Return the canonical lower-case form of a UUID path parameter.

    Raises:
        BadRequest: ``value`` is not a UUID (docs/api.md: a malformed id in a path is 400).
    """
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadRequest(
            f"{field} is not a valid UUID", violations=[f"{field}: not a valid UUID"]
        ) from None


def require_account(permission: str) -> Callable[[Actor], Awaitable[Actor]]:
    """Dependency factory: the actor's account role must grant ``permission``, else 403."""

    async def dependency(actor: ActorDep) -> Actor:
        if not account_allows(actor.role, permission):
            raise PermissionDenied(
                f"Your role {actor.role} may not do this ({permission})", permission=permission
            )
        return actor

    REQUIREMENTS[dependency] = ("account", permission)
    return dependency


@dataclass(frozen=True)
class ProjectContext:
    """The caller, the project of the path, and the caller's role in it."""

    actor: Actor
    project: Project
    role: str


#: A project by id, built once (``session.get`` costs more Python time per call).
_PROJECT = select(Project).where(Project.id == bindparam("id"))


def visible_project(session: Session, *, actor: Actor, project_id: str) -> ProjectContext:
    """The project ``project_id`` as the actor sees it.

    Raises:
        BadRequest: ``project_id`` is not a UUID.
        NotFound: no such project, or the actor is not a member (the same answer).
    """
    pid = parse_uuid(project_id, field="projectId")
    project = session.execute(_PROJECT, {"id": pid}).scalar_one_or_none()
    role = project_role(session, actor=actor, project_id=pid) if project else None
    if (
        project is None
        or project.account_id != actor.account_id
        or not project_allows(role, "project.read")
    ):
        raise NotFound(f"Project {pid} not found")
    assert role is not None
    return ProjectContext(actor=actor, project=project, role=role)


def project_refusal(ctx: ProjectContext, permission: str) -> PermissionDenied:
    """The 403 for a caller whose project role in ``ctx`` lacks ``permission``."""
    return PermissionDenied(
        f"Your project role {ctx.role} may not do this ({permission})",
        permission=permission,
        project_id=ctx.project.id,
    )


#: A dependency that authenticates a request and returns its :class:`Actor`: the bearer token's
#: (:func:`current_actor`, ``/v1``) or the console session's.
ActorDependency = Callable[..., Awaitable[Actor]]


@functools.cache
def project_permission(
    permission: str, actor_dependency: ActorDependency = current_actor
) -> Callable[..., Awaitable[ProjectContext]]:
    """Dependency factory: the path's project (``{projectId}``) as the actor of
    ``actor_dependency`` sees it (:func:`visible_project`: 404 when invisible), whose project
    role must grant ``permission`` (else :class:`PermissionDenied`, 403). ``/v1`` and the
    console build their checks with it, so both judge a request by the same table; the same
    arguments give the same dependency (FastAPI runs it once per request)."""

    async def dependency(
        actor: Actor,
        session: SessionDep,
        project_id: Annotated[str, Path(alias="projectId", description="project UUID")],
    ) -> ProjectContext:
        ctx = await run_read(session, visible_project, session, actor=actor, project_id=project_id)
        if not project_allows(ctx.role, permission):
            raise project_refusal(ctx, permission)
        return ctx

    # Set here, not written in the signature: under postponed evaluation FastAPI resolves a
    # written annotation in the module's globals, where ``actor_dependency`` is not.
    dependency.__annotations__["actor"] = Annotated[Actor, Depends(actor_dependency)]
    REQUIREMENTS[dependency] = ("project", permission)
    return dependency


def _account_project(permission: str) -> Callable[..., Awaitable[ProjectContext]]:
    """Dependency factory: the actor's account role must grant ``permission`` (else 403), and
    the path's project must be in the actor's account (else 404); membership is not needed.
    ``role`` is the actor's project role, or ``""`` when it has none."""

    def load(session: Session, *, actor: Actor, project_id: str) -> ProjectContext:
        pid = parse_uuid(project_id, field="projectId")
        project = session.execute(_PROJECT, {"id": pid}).scalar_one_or_none()
        if project is None or project.account_id != actor.account_id:
            raise NotFound(f"Project {pid} not found")
        role = project_role(session, actor=actor, project_id=pid)
        return ProjectContext(actor=actor, project=project, role=role or "")

    async def dependency(
        actor: ActorDep,
        session: SessionDep,
        project_id: Annotated[str, Path(alias="projectId", description="project UUID")],
    ) -> ProjectContext:
        if not account_allows(actor.role, permission):
            raise PermissionDenied(
                f"Your role {actor.role} may not do this ({permission})", permission=permission
            )
        return await run_read(session, load, session, actor=actor, project_id=project_id)

    REQUIREMENTS[dependency] = ("account", permission)
    return dependency


@dataclass(frozen=True)
class EnvironmentContext:
    """The caller, the project and environment of the path, the caller's project role and
    effective access level in the environment."""

    actor: Actor
    project: Project
    role: str
    environment: Environment
    level: str


ProjectReader = Annotated[ProjectContext, Depends(project_permission("project.read"))]


def _environment_level(
    session: Session, *, ctx: ProjectContext, name: str
) -> tuple[Environment, str]:
    """The project's environment ``name`` and the caller's access level in it.

    Raises:
        NotFound: no such environment in the project.
    """
    environment = environment_service.get(session, project=ctx.project, name=name)
    level = access_level(
        session,
        actor=ctx.actor,
        role=ctx.role,
        environment_id=environment.id,
        default_level=environment.default_user_access_level,
    )
    return environment, level


@functools.cache
def environment_permission(
    permission: str, actor_dependency: ActorDependency = current_actor
) -> Callable[..., Awaitable[EnvironmentContext]]:
    """Dependency factory: the path's project (``{projectId}``, readable by the actor of
    ``actor_dependency``, else 404) and environment (``{environmentName}``, else 404), in which
    the actor's access level must grant ``permission`` (else :class:`PermissionDenied`, 403)."""
    reader = project_permission("project.read", actor_dependency)

    async def dependency(
        ctx: ProjectContext,
        session: SessionDep,
        name: Annotated[str, Path(alias="environmentName", description="environment name")],
    ) -> EnvironmentContext:
        environment, level = await run_read(
            session, _environment_level, session, ctx=ctx, name=name
        )
        if not environment_allows(level, permission):
            raise PermissionDenied(
                f"Your access level {level} to environment {environment.name!r} "
                f"does not allow this ({permission})",
                permission=permission,
                project_id=ctx.project.id,
            )
        return EnvironmentContext(
            actor=ctx.actor,
            project=ctx.project,
            role=ctx.role,
            environment=environment,
            level=level,
        )

    dependency.__annotations__["ctx"] = Annotated[ProjectContext, Depends(reader)]
    REQUIREMENTS[dependency] = ("environment", permission)
    return dependency


def audit_scope(session: Session, *, actor: Actor, project_id: str | None) -> AuditFilter:
    """Which events ``actor`` may read: Super Admins and Admins every event of the account,
    anyone else the events of the projects whose role grants ``audit.read`` (Owners); with
    ``project_id``, that project's only.

    Raises:
        NotFound: ``project_id`` names a project the caller cannot see.
        PermissionDenied: the caller sees that project but may not read its audit trail.
    """
    if project_id is not None:
        ctx = visible_project(session, actor=actor, project_id=project_id)
        if not account_allows(actor.role, "audit.read") and not project_allows(
            ctx.role, "audit.read"
        ):
            raise PermissionDenied(
                f"Your project role {ctx.role} may not read the audit trail (audit.read)",
                permission="audit.read",
                project_id=ctx.project.id,
            )
        return AuditFilter(project_ids=None, project_id=ctx.project.id)
    if account_allows(actor.role, "audit.read"):
        return AuditFilter(project_ids=None)
    roles = [role for role, perms in PROJECT_PERMISSIONS.items() if "audit.read" in perms]
    owned = session.scalars(
        select(ProjectMember.project_id).where(
            ProjectMember.principal_type == actor.type,
            ProjectMember.principal_id == actor.id,
            ProjectMember.role.in_(roles),
        )
    )
    return AuditFilter(project_ids=list(owned))


def _audit_filter(
    actor: ActorDep,
    session: SessionDep,
    project_id: Annotated[
        str | None, Query(alias="projectId", description="only this project's events")
    ] = None,
) -> AuditFilter:
    """:func:`audit_scope` of the request's caller and ``projectId``."""
    return audit_scope(session, actor=actor, project_id=project_id)


REQUIREMENTS[_audit_filter] = ("audit", "audit.read")

ProjectWriter = Annotated[ProjectContext, Depends(project_permission("project.write"))]
ProjectUpdater = Annotated[ProjectContext, Depends(project_permission("project.update"))]
ProjectDeleter = Annotated[ProjectContext, Depends(project_permission("project.delete"))]
MemberReader = Annotated[ProjectContext, Depends(project_permission("member.read"))]
MemberManager = Annotated[ProjectContext, Depends(project_permission("member.manage"))]
EnvironmentReader = Annotated[
    EnvironmentContext, Depends(environment_permission("environment.read"))
]
EnvironmentRunner = Annotated[
    EnvironmentContext, Depends(environment_permission("environment.run"))
]
EnvironmentAdmin = Annotated[
    EnvironmentContext, Depends(environment_permission("environment.write"))
]
AuditReader = Annotated[AuditFilter, Depends(_audit_filter)]
ProjectCreator = Annotated[Actor, Depends(require_account("project.create"))]
AgentReader = Annotated[Actor, Depends(require_account("agent.read"))]
AgentWriter = Annotated[Actor, Depends(require_account("agent.write"))]
ApiClientManager = Annotated[Actor, Depends(require_account("api_client.manage"))]
UserReader = Annotated[Actor, Depends(require_account("user.read"))]
UserManager = Annotated[Actor, Depends(require_account("user.manage"))]
SecretScopeManager = Annotated[ProjectContext, Depends(_account_project("secret_scope.manage"))]
