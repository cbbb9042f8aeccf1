"""HTTP routes of environments (docs/api.md, Environments)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Path, Query, Request, Response

from stead.environments import service
from stead.environments.models import Environment
from stead.environments.schemas import (
    ConnectionOverrideRead,
    EnvironmentCreate,
    EnvironmentRead,
    EnvironmentSummary,
    EnvironmentUpdate,
)
from stead.identity.deps import EnvironmentAdmin, EnvironmentReader, ProjectReader, ProjectWriter
from stead.pagination import Page
from stead.pipeline.paging import PageDep
from stead.pipeline.transaction import SessionDep, make_router
from stead.warehouses import connection_test
from stead.warehouses.dbt import MEDIA_TYPE, ProfileFormat, profiles_yml

router = make_router(prefix="/projects/{projectId}/environments", tags=["environments"])

EnvironmentName = Annotated[str, Path(alias="environmentName", description="environment name")]


def environment_read(environment: Environment) -> EnvironmentRead:
    """The wire form of ``environment`` (GET answers, the repository scaffold's ``stead.yaml``);
    its credentials as stored: plain values, secret references, ``{secretName, set}``."""
    connection = environment.connection
    return EnvironmentRead(
        name=environment.name,
        display_name=environment.display_name,
        description=environment.description,
        default_agent_id=environment.default_agent_id,
        default_agent_name=environment.agent.name,
        default_user_access_level=environment.default_user_access_level,
        default_connections={"DWH": {connection.auth_provider.lower(): connection.name}},
        connection_overrides=[
            ConnectionOverrideRead(
                connection_name=connection.name,
                connection_properties=environment.connection_properties,
            )
        ],
        created_at=environment.created_at,
        updated_at=environment.updated_at,
    )


Validate = Annotated[
    bool,
    Query(
        description="run the connection test with the given credentials first, and store "
        "nothing when it fails (400 carrying the warehouse's error as warehouseError)"
    ),
]


@router.post("", status_code=201, response_model=EnvironmentRead)
def create_environment(
    data: EnvironmentCreate,
    ctx: ProjectWriter,
    session: SessionDep,
    response: Response,
    request: Request,
    validate: Validate = False,
) -> EnvironmentRead:
    """Create an environment with its agent, DWH connection and connection properties (DPC);
    ``validate=true`` tests the connection first (Stead)."""
    if validate:
        connection_test.validate(
            request,
            session,
            actor=ctx.actor,
            project=ctx.project,
            environment=data.name,
            properties=service.candidate_properties(
                session, actor=ctx.actor, project=ctx.project, data=data
            ),
        )
    environment = service.create(session, actor=ctx.actor, project=ctx.project, data=data)
    response.headers["Location"] = (
        f"/v1/projects/{ctx.project.id}/environments/{quote(environment.name, safe='')}"
    )
    return environment_read(environment)


@router.get("", response_model=Page[EnvironmentSummary])
def list_environments(
    ctx: ProjectReader, session: SessionDep, params: PageDep
) -> Page[EnvironmentSummary]:
    """List the project's environments, oldest first."""
    total, rows = service.list_page(session, project=ctx.project, params=params)
    return Page(
        page=params.page,
        size=params.size,
        total=total,
        results=[
            EnvironmentSummary(
                name=e.name,
                display_name=e.display_name,
                default_agent_id=e.default_agent_id,
                default_agent_name=e.agent.name,
                default_user_access_level=e.default_user_access_level,
            )
            for e in rows
        ],
    )


@router.get("/{environmentName}", response_model=EnvironmentRead)
def get_environment(ctx: EnvironmentReader) -> EnvironmentRead:
    """Read one environment by name (case-insensitive); ``noAccess`` hides its settings (403)."""
    return environment_read(ctx.environment)


@router.patch("/{environmentName}", response_model=EnvironmentRead)
def update_environment(
    name: EnvironmentName,
    data: EnvironmentUpdate,
    ctx: EnvironmentAdmin,
    session: SessionDep,
    request: Request,
    validate: Validate = False,
) -> EnvironmentRead:
    """Change the fields given, any but ``name``; the others keep their values. Connection
    properties are merged (JSON merge patch, RFC 7396): those named are set, ``null`` removes an
    optional one, those left out are kept. ``validate=true`` tests the connection as it would be
    after the change first."""
    if validate:
        connection_test.validate(
            request,
            session,
            actor=ctx.actor,
            project=ctx.project,
            environment=ctx.environment.name,
            properties=service.candidate_properties(
                session, actor=ctx.actor, project=ctx.project, data=data, name=name
            ),
        )
    environment = service.update(
        session, actor=ctx.actor, project=ctx.project, name=name, data=data
    )
    return environment_read(environment)


@router.delete("/{environmentName}", status_code=204)
def delete_environment(
    name: EnvironmentName, ctx: EnvironmentAdmin, session: SessionDep
) -> Response:
    """Delete an environment."""
    service.delete(session, actor=ctx.actor, project=ctx.project, name=name)
    return Response(status_code=204)


@router.get(
    "/{environmentName}/profile",
    response_class=Response,
    responses={200: {"content": {MEDIA_TYPE: {}}, "description": "a dbt profiles.yml"}},
)
def get_profile(
    ctx: EnvironmentReader,
    profile_format: Annotated[
        ProfileFormat, Query(alias="format", description="dbt: a dbt profiles.yml")
    ],
) -> Response:
    """The environment as a connection profile (Stead): ``format=dbt`` gives a dbt
    ``profiles.yml`` target whose secrets are ``env_var()`` references, never values."""
    text = profiles_yml(
        project=ctx.project.name,
        environment=ctx.environment.name,
        warehouse=ctx.project.warehouse,
        properties=ctx.environment.connection_properties,
    )
    return Response(text, media_type=MEDIA_TYPE)
