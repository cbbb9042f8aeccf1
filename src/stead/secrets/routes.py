"""HTTP routes of secret references and hosted secrets (docs/api.md, Secrets)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Path, Request, Response

from stead.identity.deps import ProjectReader, ProjectWriter, SecretScopeManager
from stead.pagination import Page
from stead.pipeline.paging import PageDep
from stead.pipeline.transaction import SessionDep, make_router
from stead.secrets import resolvers, scopes, service
from stead.secrets.schemas import (
    SECRET_REFERENCE_NAME,
    HostedSecretCreate,
    HostedSecretRead,
    HostedSecretUpdate,
    SecretReferenceCheck,
    SecretReferenceCreate,
    SecretReferenceRead,
    SecretScopesRead,
    SecretScopesUpdate,
)

router = make_router(prefix="/projects/{projectId}/secret-references", tags=["secret references"])

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


@router.post(
    "/{secretReferenceName}/check",
    response_model=SecretReferenceCheck,
    responses={
        400: {"description": "the store has no such secret, or no such key in it"},
        403: {"description": "the store refused Stead's credentials for the secret"},
        404: {"description": "no such secret reference"},
        502: {"description": "the store could not be reached or failed"},
        503: {"description": "this installation is not configured for the store"},
        504: {"description": "the store did not answer in time"},
    },
)
def check_secret_reference(
    name: NamePath, ctx: ProjectWriter, session: SessionDep, request: Request
) -> SecretReferenceCheck:
    """Resolve the reference against its store now, without returning the value: confirms
    that the secret exists, that Stead may read it and, with ``secretKey``, that the key is
    there (Stead)."""
    return resolvers.check_reference(
        session,
        actor=ctx.actor,
        settings=request.app.state.settings,
        project=ctx.project,
        name=name,
    )


hosted_router = make_router(prefix="/projects/{projectId}/secrets", tags=["hosted secrets"])

SecretName = Annotated[str, Path(alias="secretName", description="hosted secret name")]


@hosted_router.post("", status_code=201, response_model=HostedSecretRead)
def create_hosted_secret(
    data: HostedSecretCreate, ctx: ProjectWriter, session: SessionDep, response: Response
) -> HostedSecretRead:
    """Store a secret value encrypted in Stead (the DPC Full SaaS "create secret" step); the
    response holds metadata only."""
    secret = service.create_hosted(session, actor=ctx.actor, project=ctx.project, data=data)
    response.headers["Location"] = (
        f"/v1/projects/{ctx.project.id}/secrets/{quote(secret.name, safe='')}"
    )
    return HostedSecretRead.model_validate(secret)


@hosted_router.get("", response_model=Page[HostedSecretRead])
def list_hosted_secrets(
    ctx: ProjectReader, session: SessionDep, params: PageDep
) -> Page[HostedSecretRead]:
    """List the project's hosted secrets (metadata only), oldest first."""
    total, rows = service.list_hosted(session, project=ctx.project, params=params)
    return Page(
        page=params.page,
        size=params.size,
        total=total,
        results=[HostedSecretRead.model_validate(r) for r in rows],
    )


@hosted_router.get("/{secretName}", response_model=HostedSecretRead)
def get_hosted_secret(
    name: SecretName, ctx: ProjectReader, session: SessionDep
) -> HostedSecretRead:
    """Read one hosted secret's metadata (case-insensitive name); never its value."""
    return HostedSecretRead.model_validate(
        service.get_hosted(session, project=ctx.project, name=name)
    )


@hosted_router.put("/{secretName}", response_model=HostedSecretRead)
def update_hosted_secret(
    name: SecretName, data: HostedSecretUpdate, ctx: ProjectWriter, session: SessionDep
) -> HostedSecretRead:
    """Store a new version of the secret's value (and optionally a new type)."""
    secret = service.update_hosted(
        session, actor=ctx.actor, project=ctx.project, name=name, data=data
    )
    return HostedSecretRead.model_validate(secret)


@hosted_router.delete("/{secretName}", status_code=204)
def delete_hosted_secret(name: SecretName, ctx: ProjectWriter, session: SessionDep) -> Response:
    """Delete a hosted secret that no environment refers to, with all its versions."""
    service.delete_hosted(session, actor=ctx.actor, project=ctx.project, name=name)
    return Response(status_code=204)


scope_router = make_router(prefix="/projects/{projectId}/secret-scopes", tags=["secret references"])


@scope_router.get("", response_model=SecretScopesRead)
def get_secret_scopes(ctx: SecretScopeManager, session: SessionDep) -> SecretScopesRead:
    """The name or path prefixes the project's secret references may use in each external
    store, and the references now outside them (Stead; account admins)."""
    return scopes.read(session, project=ctx.project)


@scope_router.put(
    "",
    response_model=SecretScopesRead,
    responses={400: {"description": "a store listed twice, or a prefix it cannot have"}},
)
def set_secret_scopes(
    data: SecretScopesUpdate, ctx: SecretScopeManager, session: SessionDep
) -> SecretScopesRead:
    """Set the project's scopes: each store listed gets exactly its prefixes, the others go
    back to the project's own prefix (Stead; account admins). References outside the new
    scope stop resolving (403) and are listed in ``outOfScope``."""
    return scopes.replace(session, actor=ctx.actor, project=ctx.project, data=data)
