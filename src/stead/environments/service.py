"""Environment rules (contract section 4): agent, DWH connection and its properties."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from stead import audit
from stead.agents import service as agents_service
from stead.agents.models import Agent
from stead.connections import service as connections_service
from stead.connections.models import Connection
from stead.environments.models import Environment
from stead.environments.schemas import (
    ConnectionOverride,
    ConnectionOverrideUpdate,
    EnvironmentCreate,
    EnvironmentUpdate,
)
from stead.errors import BadRequest, Conflict, NotFound
from stead.identity.service import Actor
from stead.pagination import PageParams, paginate
from stead.projects.models import Project
from stead.secrets.service import find_reference
from stead.warehouses import StoredValue, check_properties, spec_for
from stead.wire import check_name, name_key

OVERRIDE = "connectionOverrides[0]"
PROPERTIES = f"{OVERRIDE}.connectionProperties"


def find(session: Session, *, project_id: str, name: str) -> Environment | None:
    """The project's environment named ``name`` (case-insensitive, NFC), or None."""
    try:
        check_name(name)
    except ValueError:
        return None  # cannot exist; may hold a NUL, which PostgreSQL refuses in a query
    return session.scalar(
        select(Environment).where(
            Environment.project_id == project_id, Environment.name_key == name_key(name)
        )
    )


def get(session: Session, *, project: Project, name: str) -> Environment:
    """The project's environment named ``name``.

    Raises:
        NotFound: no such environment in the project.
    """
    environment = find(session, project_id=project.id, name=name)
    if environment is None:
        raise NotFound(f"Environment {name!r} not found in project {project.name!r}")
    return environment


def _agent(
    session: Session, *, project: Project, agent_id: str, violations: list[str]
) -> Agent | None:
    try:
        return agents_service.check_usable(
            session, account_id=project.account_id, agent_id=agent_id, project=project
        )
    except BadRequest as exc:
        violations += exc.violations
        return None


def _dwh_connection(
    session: Session, *, project: Project, given: dict[str, dict[str, str]], violations: list[str]
) -> Connection | None:
    """The connection ``defaultConnections`` names: ``{"DWH": {"<provider>": "<name>"}}`` with the
    project's warehouse as provider (lower case on the wire, any case accepted)."""
    path = "defaultConnections"
    dwh_keys = [key for key in given if key.casefold() == "dwh"]
    violations += [
        f"{path}.{key}: unknown connection type; the only one is DWH"
        for key in given
        if key.casefold() != "dwh"
    ]
    violations += [f"{path}.{key}: DWH given more than once" for key in dwh_keys[1:]]
    if not dwh_keys:
        violations.append(f"{path}.DWH: required")
        return None
    where = f"{path}.{dwh_keys[0]}"
    entries = given[dwh_keys[0]]
    if len(entries) != 1:
        violations.append(
            f'{where}: must hold exactly one entry {{"<snowflake|redshift>": "<connection name>"}}'
        )
        return None
    [(provider, connection_name)] = entries.items()
    expected = project.warehouse.lower()
    if provider.casefold() != expected:
        violations.append(
            f"{where}.{provider}: the project's warehouse is {project.warehouse}; use {expected!r}"
        )
        return None
    connection = connections_service.find(session, project_id=project.id, name=connection_name)
    if connection is None:
        violations.append(
            f"{where}.{provider}: no connection named {connection_name!r} in this project"
        )
    return connection


def _properties(
    session: Session,
    *,
    project: Project,
    override: ConnectionOverride | ConnectionOverrideUpdate,
    connection: Connection | None,
    kept: dict[str, StoredValue],
    violations: list[str],
) -> dict[str, StoredValue]:
    """Check the override against the warehouse's property spec and the project's secret
    references; sensitive properties of ``kept`` that the override leaves out stay."""
    if connection is not None and name_key(override.connection_name) != connection.name_key:
        violations.append(
            f"{OVERRIDE}.connectionName: must be the DWH connection "
            f"{connection.name!r} named in defaultConnections"
        )
    spec = spec_for(project.warehouse)
    given = {
        key: value.stored()
        for key, value in override.connection_properties.items()
        if value is not None
    }
    removed = {key for key, value in override.connection_properties.items() if value is None}
    violations += [
        f"{PROPERTIES}.{key}: unknown property for {spec.name}"
        for key in sorted(removed)
        if key not in spec.keys
    ]
    given |= {
        key: value
        for key, value in kept.items()
        if key in spec.sensitive and key not in given and key not in removed
    }
    properties, problems = check_properties(spec, given, path=PROPERTIES)
    violations += problems
    for key, value in properties.items():
        if "secretName" not in value:
            continue
        reference = find_reference(session, project_id=project.id, name=value["secretName"])
        if reference is None:
            violations.append(
                f"{PROPERTIES}.{key}.secretName: no secret reference of that name in this project"
            )
        else:
            properties[key] = {"secretName": reference.name, "secretKey": value.get("secretKey")}
    return properties


def _raise_if_invalid(violations: list[str]) -> None:
    if violations:
        raise BadRequest(
            "The request has invalid fields: " + "; ".join(violations), violations=violations
        )


def create(
    session: Session, *, actor: Actor, project: Project, data: EnvironmentCreate
) -> Environment:
    """Create an environment of the project (contract section 4).

    Raises:
        Conflict: the name is taken in the project (case-insensitive).
        BadRequest: one violation per problem: the agent (unknown, wrong kind for the project's
            deployment type, restricted without allowing the project), ``defaultConnections``
            (shape, provider other than the project's warehouse, unknown connection), the
            override's ``connectionName``, and each connection property (unknown or missing key,
            invalid value, sensitive value given inline, unknown secret reference).
    """
    if find(session, project_id=project.id, name=data.name) is not None:
        raise Conflict(
            f"An environment named {data.name!r} already exists in this project",
            violations=["name: already used in this project"],
        )
    violations: list[str] = []
    agent = _agent(session, project=project, agent_id=data.default_agent_id, violations=violations)
    connection = _dwh_connection(
        session, project=project, given=data.default_connections, violations=violations
    )
    properties = _properties(
        session,
        project=project,
        override=data.connection_overrides[0],
        connection=connection,
        kept={},
        violations=violations,
    )
    _raise_if_invalid(violations)
    assert agent is not None and connection is not None
    environment = Environment(
        project_id=project.id,
        name=data.name,
        name_key=name_key(data.name),
        display_name=data.display_name or data.name,
        description=data.description,
        agent=agent,
        connection=connection,
        default_user_access_level=data.default_user_access_level,
        connection_properties=properties,
    )
    session.add(environment)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="environment.created",
        target_type="environment",
        target_id=environment.name,
        project_id=project.id,
        details={
            "name": environment.name,
            "connection": connection.name,
            "defaultAgentId": agent.id,
        },
    )
    return environment


def list_page(
    session: Session, *, project: Project, params: PageParams
) -> tuple[int, list[Environment]]:
    """One page of the project's environments, oldest first: ``(total, environments)``."""
    query = (
        select(Environment)
        .where(Environment.project_id == project.id)
        .order_by(Environment.created_at, Environment.id)
    )
    return paginate(session, query, params)


def update(
    session: Session, *, actor: Actor, project: Project, name: str, data: EnvironmentUpdate
) -> Environment:
    """Change any field of an environment but its name (contract section 4).

    A ``connectionOverrides`` item replaces the stored properties (defaults filled in again),
    except that sensitive properties it leaves out keep their stored references; ``null`` removes
    an optional property. ``displayName: null`` resets the display name to the name.

    Raises:
        NotFound: no such environment.
        BadRequest: as for :func:`create`, for the fields given.
    """
    environment = get(session, project=project, name=name)
    fields = data.model_fields_set
    violations: list[str] = []
    agent: Agent | None = environment.agent
    if data.default_agent_id is not None:
        agent = _agent(
            session, project=project, agent_id=data.default_agent_id, violations=violations
        )
    connection: Connection | None = environment.connection
    if data.default_connections is not None:
        connection = _dwh_connection(
            session, project=project, given=data.default_connections, violations=violations
        )
    properties = environment.connection_properties
    if data.connection_overrides is not None:
        properties = _properties(
            session,
            project=project,
            override=data.connection_overrides[0],
            connection=connection,
            kept=properties,
            violations=violations,
        )
    _raise_if_invalid(violations)
    assert agent is not None and connection is not None
    if "display_name" in fields:
        environment.display_name = data.display_name or environment.name
    if "description" in fields:
        environment.description = data.description
    if data.default_user_access_level is not None:
        environment.default_user_access_level = data.default_user_access_level
    environment.agent = agent
    environment.connection = connection
    environment.connection_properties = properties
    session.flush()
    changed = sorted(data.model_dump(by_alias=True, exclude_unset=True))
    audit.record(
        session,
        actor=actor,
        action="environment.updated",
        target_type="environment",
        target_id=environment.name,
        project_id=project.id,
        details={"fields": changed},
    )
    return environment


def delete(session: Session, *, actor: Actor, project: Project, name: str) -> None:
    """Delete an environment.

    Raises:
        NotFound: no such environment.
    """
    environment = get(session, project=project, name=name)
    audit.record(
        session,
        actor=actor,
        action="environment.deleted",
        target_type="environment",
        target_id=environment.name,
        project_id=project.id,
        details={"name": environment.name},
    )
    session.delete(environment)
    session.flush()
