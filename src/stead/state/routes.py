"""HTTP route of the project state read (docs/api.md, Project state)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from stead.identity.deps import ActorDep, parse_uuid
from stead.pagination import Page
from stead.pipeline.paging import PageDep
from stead.pipeline.transaction import SessionDep, make_router
from stead.state import service
from stead.state.schemas import ProjectStateRead

router = make_router(prefix="/projects", tags=["projects"])

Names = Annotated[
    list[str],
    Query(alias="name", description="a project name (repeat for several; any case)"),
]
ProjectIds = Annotated[
    list[str],
    Query(alias="projectId", description="a project id (repeat for several)"),
]


@router.get("/state", response_model=Page[ProjectStateRead])
def read_project_states(
    actor: ActorDep,
    session: SessionDep,
    params: PageDep,
    names: Names = [],  # noqa: B006 - FastAPI copies the default
    project_ids: ProjectIds = [],  # noqa: B006 - FastAPI copies the default
) -> Page[ProjectStateRead]:
    """Read the visible projects (those named, those with the ids given, or all) with everything
    in them, a page at a time, in list order [Stead]."""
    ids = [parse_uuid(pid, field="projectId") for pid in project_ids]
    total, states = service.read(session, actor=actor, names=names, project_ids=ids, params=params)
    return Page(page=params.page, size=params.size, total=total, results=states)
