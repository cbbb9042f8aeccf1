"""HTTP routes of projects (docs/api.md, Projects)."""

from __future__ import annotations

from fastapi import Response

from stead.identity.deps import (
    ActorDep,
    ProjectCreator,
    ProjectDeleter,
    ProjectReader,
    ProjectUpdater,
)
from stead.pagination import Page, PageDep
from stead.pipeline.transaction import SessionDep, make_router
from stead.projects import service
from stead.projects.schemas import ProjectCreate, ProjectCreated, ProjectRead, ProjectUpdate

router = make_router(prefix="/projects", tags=["projects"])


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
