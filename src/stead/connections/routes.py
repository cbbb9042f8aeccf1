"""HTTP routes of data-platform connections (docs/api.md, Connections)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Path, Response

from stead.connections import service
from stead.connections.schemas import ConnectionCreate, ConnectionRead
from stead.identity.deps import ProjectReader, ProjectWriter
from stead.pagination import Page
from stead.pipeline.paging import PageDep
from stead.pipeline.transaction import SessionDep, make_router

router = make_router(prefix="/projects/{projectId}/data-platform-connections", tags=["connections"])

ConnectionName = Annotated[str, Path(alias="connectionName", description="connection name")]


@router.post("", status_code=201, response_model=ConnectionRead)
def create_connection(
    data: ConnectionCreate, ctx: ProjectWriter, session: SessionDep, response: Response
) -> ConnectionRead:
    """Create the project's default warehouse (DWH) connection (DPC)."""
    connection = service.create(session, actor=ctx.actor, project=ctx.project, data=data)
    response.headers["Location"] = (
        f"/v1/projects/{ctx.project.id}/data-platform-connections/{quote(connection.name, safe='')}"
    )
    return ConnectionRead.model_validate(connection)


@router.get("", response_model=Page[ConnectionRead])
def list_connections(
    ctx: ProjectReader, session: SessionDep, params: PageDep
) -> Page[ConnectionRead]:
    """List the project's connections, oldest first."""
    total, rows = service.list_page(session, project=ctx.project, params=params)
    return Page(
        page=params.page,
        size=params.size,
        total=total,
        results=[ConnectionRead.model_validate(c) for c in rows],
    )


@router.get("/{connectionName}", response_model=ConnectionRead)
def get_connection(name: ConnectionName, ctx: ProjectReader, session: SessionDep) -> ConnectionRead:
    """Read one connection by name (case-insensitive)."""
    return ConnectionRead.model_validate(service.get(session, project=ctx.project, name=name))


@router.delete("/{connectionName}", status_code=204)
def delete_connection(name: ConnectionName, ctx: ProjectWriter, session: SessionDep) -> Response:
    """Delete a connection; 409 while an environment uses it."""
    service.delete(session, actor=ctx.actor, project=ctx.project, name=name)
    return Response(status_code=204)
