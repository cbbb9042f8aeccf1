"""HTTP routes of projects (docs/api.md, Projects)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Request, Response
from pydantic import SecretStr

from stead.identity.deps import (
    ActorDep,
    ProjectCreator,
    ProjectDeleter,
    ProjectReader,
    ProjectUpdater,
)
from stead.pagination import Page
from stead.pipeline.paging import PageDep
from stead.pipeline.transaction import SessionDep, make_router
from stead.projects import provisioning, service
from stead.projects.schemas import (
    ProjectCreate,
    ProjectCreated,
    ProjectRead,
    ProjectUpdate,
    ProvisionRequest,
    ProvisionResult,
)
from stead.repositories.provider import TOKEN_HEADER, read_token

router = make_router(prefix="/projects", tags=["projects"])
provisioning_router = make_router(prefix="/provisioning", tags=["projects"])


@router.post("", status_code=201, response_model=ProjectCreated)
def create_project(
    data: ProjectCreate, actor: ProjectCreator, session: SessionDep, response: Response
) -> ProjectCreated:
    """Create a project (DPC). Visible to Super Admins (and its creator) until users are invited."""
    project = service.create(session, actor=actor, data=data)
    response.headers["Location"] = f"/v1/projects/{project.id}"
    return ProjectCreated(project_id=project.id)


@router.get("", response_model=Page[ProjectRead])
def list_projects(actor: ActorDep, session: SessionDep, params: PageDep) -> Page[ProjectRead]:
    """List the projects the caller may see, oldest first."""
    total, rows = service.list_visible(session, actor=actor, params=params)
    return Page(
        page=params.page,
        size=params.size,
        total=total,
        results=[ProjectRead.model_validate(p) for p in rows],
    )


@router.get("/{projectId}", response_model=ProjectRead)
async def get_project(ctx: ProjectReader) -> ProjectRead:
    """Read one project (loaded by the permission check: nothing left to do off the loop)."""
    return ProjectRead.model_validate(ctx.project)


@router.patch("/{projectId}", response_model=ProjectRead)
def update_project(data: ProjectUpdate, ctx: ProjectUpdater, session: SessionDep) -> ProjectRead:
    """Change a project's ``name`` or ``description``."""
    project = service.update(session, actor=ctx.actor, project=ctx.project, data=data)
    return ProjectRead.model_validate(project)


@router.delete("/{projectId}", status_code=204)
def delete_project(ctx: ProjectDeleter, session: SessionDep) -> Response:
    """Delete a project with its connections, environments, secret references and repository."""
    service.delete(session, actor=ctx.actor, project=ctx.project)
    return Response(status_code=204)


@provisioning_router.post(
    "",
    status_code=201,
    response_model=ProvisionResult,
    responses={
        403: {"description": "A step's service refused (e.g. a secret outside the scope)"},
        409: {"description": "A name is taken (e.g. the project's, with existingId)"},
        502: {"description": "The repository's provider failed or could not be reached"},
        503: {"description": "The repository's provider is rate limiting the token"},
        504: {"description": "The repository's provider did not answer in time"},
    },
)
def provision(
    data: ProvisionRequest,
    actor: ProjectCreator,
    session: SessionDep,
    request: Request,
    response: Response,
    token: Annotated[
        str | None,
        Header(
            alias=TOKEN_HEADER,
            description="The repository provider's access token, required with `repository`; "
            "used for the check only, never stored or logged",
        ),
    ] = None,
) -> ProvisionResult:
    """Create a project with its warehouse connection, secret, environment and repository in
    one transaction [Stead]: all of it, or (on any error) nothing."""
    secret: SecretStr | None = None if token is None else read_token(token)
    result = provisioning.provision(
        session, actor=actor, data=data, token=secret, settings=request.app.state.settings
    )
    response.headers["Location"] = f"/v1/projects/{result.project_id}"
    return result
