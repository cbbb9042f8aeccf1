"""HTTP routes of secret references (contract section 5)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from stead.db import SessionDep
from stead.identity.deps import ProjectReader, ProjectWriter
from stead.pagination import Page, PageDep
from stead.secrets import service
from stead.secrets.schemas import (
    SECRET_REFERENCE_NAME,
    SecretReferenceCreate,
    SecretReferenceRead,
)

router = APIRouter(prefix="/projects/{projectId}/secret-references", tags=["secret references"])

NamePath = Annotated[
    str,
    Path(
        alias="secretReferenceName",
        pattern=SECRET_REFERENCE_NAME,
        description="1-128 characters: letters, digits, _ ( ) -",
    ),
]


@router.post("/{secretReferenceName}", status_code=201, response_model=SecretReferenceRead)
def create_secret_reference(
    name: NamePath,
    data: SecretReferenceCreate,
    ctx: ProjectWriter,
    session: SessionDep,
    response: Response,
) -> SecretReferenceRead:
    """Create a secret reference: where an agent finds a secret (DPC)."""
    reference = service.create(session, actor=ctx.actor, project=ctx.project, name=name, data=data)
    response.headers["Location"] = (
        f"/v1/projects/{ctx.project.id}/secret-references/{reference.name}"
    )
    return SecretReferenceRead.model_validate(reference)


@router.get("", response_model=Page[SecretReferenceRead])
def list_secret_references(
    ctx: ProjectReader, session: SessionDep, params: PageDep
) -> Page[SecretReferenceRead]:
    """List the project's secret references, oldest first."""
    total, rows = service.list_references(session, project=ctx.project, params=params)
    return Page(
        page=params.page,
        size=params.size,
        total=total,
        results=[SecretReferenceRead.model_validate(r) for r in rows],
    )


@router.get("/{secretReferenceName}", response_model=SecretReferenceRead)
def get_secret_reference(
    name: NamePath, ctx: ProjectReader, session: SessionDep
) -> SecretReferenceRead:
    """Read one secret reference (case-insensitive name)."""
    return SecretReferenceRead.model_validate(service.get(session, project=ctx.project, name=name))


@router.delete("/{secretReferenceName}", status_code=204)
def delete_secret_reference(name: NamePath, ctx: ProjectWriter, session: SessionDep) -> Response:
    """Delete a secret reference that no environment refers to."""
    service.delete(session, actor=ctx.actor, project=ctx.project, name=name)
    return Response(status_code=204)
