"""Environment rules (docs/api.md, Environments): agent, DWH connection and its properties.

Secret-held properties (references, a private key, inline values stored as hosted secrets the
environment owns) are handled in :mod:`stead.environments.credentials`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from stead import audit
from stead.agents import service as agents_service
from stead.agents.models import Agent
from stead.connections import service as connections_service
from stead.connections.models import Connection
from stead.db import named_in_project
from stead.environments import credentials
from stead.environments.credentials import OVERRIDE, PROPERTIES
from stead.environments.models import Environment
from stead.environments.schemas import (
    ConnectionOverride,
    ConnectionOverrideUpdate,
    EnvironmentCreate,
    EnvironmentUpdate,
)
from stead.errors import BadRequest, Conflict, NotFound
from stead.identity.actor import Actor
from stead.identity.permissions import PermissionDenied, environment_allows
from stead.identity.service import access_level, project_role
from stead.pagination import PageParams, paginate
from stead.projects.models import Project
from stead.secrets.schemas import HOSTED_STORE, VALUE_MAX_BYTES
from stead.secrets.service import find_reference
from stead.warehouses import StoredValue, check_properties, spec_for
from stead.wire import lookup_key, name_key

#: The properties that say where a warehouse is: a stored secret is sent only there.
HOST_PROPERTIES = {"REDSHIFT": ("url", "port"), "SNOWFLAKE": ("account",)}


def find(session: Session, *, project_id: str, name: str) -> Environment | None:
    """The project's environment named ``name`` (case-insensitive, NFC), or None."""
    key = lookup_key(name)
    if key is None:
        return None
    return session.scalar(
        named_in_project(Environment), {"project_id": project_id, "name_key": key}
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
    """Check the override against the warehouse's property spec, the project's secrets and, for
    a private key, the key checks. The override is merged into ``kept`` (JSON merge patch, RFC
    7396): a property it names is set, ``null`` removes one (an optional property with a default
    returns to it; a required one cannot be removed), and every other property of ``kept``
    stays. Sensitive inline values are still inline in the result (see
    :func:`credentials.store_inline`)."""
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
    violations += [
        f"{PROPERTIES}.{key}: required; it cannot be removed, only changed"
        for key in sorted(removed)
        if key in spec.required
    ]
    given |= {
        key: value
        for key, value in kept.items()
        if key not in given and (key not in removed or key in spec.required)
    }
    properties, problems = check_properties(spec, given, path=PROPERTIES)
    violations += problems
    for key, value in properties.items():
        if "secretName" in value:
            properties[key] = credentials.reference_entry(
                session,
                project=project,
                key=key,
                value=value,
                previous=kept.get(key),
                violations=violations,
            )
        elif key in spec.sensitive and len(value["value"].encode()) > VALUE_MAX_BYTES:
            violations.append(
                f"{PROPERTIES}.{key}.value: must be at most {VALUE_MAX_BYTES} bytes in UTF-8"
            )
    if "privateKey" in spec.sensitive:
        credentials.check_private_key(
            session, project=project, properties=properties, violations=violations
        )
    return properties


def _secret_identity(session: Session, *, project_id: str, name: str) -> tuple[str, str]:
    """Which secret a ``secretName`` stands for: ``(store, name in the store)``, so that two
    references to one store path (or a hosted-store reference and its hosted secret) are one
    secret. Hosted and Azure names compare case-insensitively, as those stores compare them."""
    reference = find_reference(session, project_id=project_id, name=name)
    if reference is None:
        return HOSTED_STORE, name_key(name)
    if reference.agent_type in (HOSTED_STORE, "Azure"):
        return reference.agent_type, name_key(reference.secret_name)
    return reference.agent_type, reference.secret_name


def _host(warehouse: str, properties: dict[str, StoredValue]) -> tuple[object, ...]:
    """Where ``properties`` send their credentials, comparable across environments."""
    out: list[object] = []
    for key in HOST_PROPERTIES[warehouse]:
        value = properties.get(key) or {}
        if "value" in value:
            out.append(str(value["value"]).casefold())
        else:
            out.append((name_key(str(value.get("secretName"))), value.get("secretKey")))
    return tuple(out)


def check_secret_use(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    properties: dict[str, StoredValue],
    environment: Environment | None = None,
) -> None:
    """Check that ``actor`` may send the stored secrets that ``properties`` (an environment's
    candidate or stored connection properties) name to the host they name
    (docs/permissions.md, "Using a stored secret").

    A stored secret that environments of the project already use belongs to them: using it
    needs ``environment.run`` on each of them, and only towards the host each of them names
    (Redshift ``url`` and ``port``, Snowflake ``account``). ``environment`` is the one being
    changed or tested: its own stored properties count as a user of the secret, but the route
    has already checked the caller's right on it. A secret no environment uses is the
    project's, governed by ``project.write``. Sensitive values given inline pass.

    Raises:
        PermissionDenied: the caller lacks ``environment.run`` on an environment using the
            secret, or the host differs from the one that environment names (403; the
            violation names the property).
    """
    spec = spec_for(project.warehouse)
    identities: dict[str, tuple[str, str]] = {}

    def identity_of(name: str) -> tuple[str, str]:
        # One lookup per name: the environments of a project mostly name the same secrets.
        if name not in identities:
            identities[name] = _secret_identity(session, project_id=project.id, name=name)
        return identities[name]

    used = {
        identity_of(value["secretName"]): key
        for key, value in properties.items()
        if key in spec.sensitive and "secretName" in value
    }
    if not used:
        return
    role = project_role(session, actor=actor, project_id=project.id)
    host = _host(project.warehouse, properties)
    others = session.scalars(select(Environment).where(Environment.project_id == project.id))
    for other in others:
        stored = other.connection_properties
        for key, value in stored.items():
            if key not in spec.sensitive or "secretName" not in value:
                continue
            identity = identity_of(value["secretName"])
            if identity not in used:
                continue
            field = f"{PROPERTIES}.{used[identity]}.secretName"
            if environment is None or other.id != environment.id:
                level = access_level(
                    session,
                    actor=actor,
                    role=role,
                    environment_id=other.id,
                    default_level=other.default_user_access_level,
                )
                if not environment_allows(level, "environment.run"):
                    raise PermissionDenied(
                        f"The secret named by {used[identity]} is used by environment "
                        f"{other.name!r}, whose credentials your access level {level} may not "
                        "use (environment.run)",
                        permission="environment.run",
                        project_id=project.id,
                        violations=[f"{field}: used by environment {other.name!r}"],
                    )
            if _host(project.warehouse, stored) != host:
                raise PermissionDenied(
                    f"The secret named by {used[identity]} is sent only to the host environment "
                    f"{other.name!r} names; to use another host, give the credential itself "
                    "as an inline value",
                    permission="secret.use",
                    project_id=project.id,
                    violations=[
                        f"{field}: bound to the host of environment {other.name!r}; "
                        "give the value inline for another host"
                    ],
                )


def _raise_if_invalid(violations: list[str]) -> None:
    if violations:
        raise BadRequest(
            "The request has invalid fields: " + "; ".join(violations), violations=violations
        )


def _check_create(
    session: Session, *, actor: Actor, project: Project, data: EnvironmentCreate
) -> tuple[Agent, Connection, dict[str, StoredValue]]:
    """Every check of :func:`create`; nothing is written. Raises as :func:`create` does."""
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
    check_secret_use(session, actor=actor, project=project, properties=properties)
    assert agent is not None and connection is not None
    return agent, connection, properties


def _check_update(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    environment: Environment,
    data: EnvironmentUpdate,
) -> tuple[Agent, Connection, dict[str, StoredValue]]:
    """Every check of :func:`update`; nothing is written. Raises as :func:`update` does."""
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
    if data.connection_overrides is not None:
        check_secret_use(
            session, actor=actor, project=project, properties=properties, environment=environment
        )
    assert agent is not None and connection is not None
    return agent, connection, properties


def candidate_properties(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    data: EnvironmentCreate | EnvironmentUpdate,
    name: str | None = None,
) -> dict[str, StoredValue]:
    """The connection properties the environment would have after :func:`create` (or, with
    ``name``, :func:`update`) with ``data``, checked exactly as those check them; nothing is
    written. Sensitive values given inline are still inline (``{"value": ...}``).

    Raises:
        as :func:`create` or :func:`update`.
    """
    if isinstance(data, EnvironmentCreate):
        return _check_create(session, actor=actor, project=project, data=data)[2]
    assert name is not None
    environment = get(session, project=project, name=name)
    return _check_update(session, actor=actor, project=project, environment=environment, data=data)[
        2
    ]


def create(
    session: Session, *, actor: Actor, project: Project, data: EnvironmentCreate
) -> Environment:
    """Create an environment of the project (docs/api.md, Environments).

    Raises:
        Conflict: the name is taken in the project (case-insensitive).
        BadRequest: one violation per problem: the agent (unknown, wrong kind for the project's
            deployment type, restricted without allowing the project), ``defaultConnections``
            (shape, provider other than the project's warehouse, unknown connection), the
            override's ``connectionName``, and each connection property (unknown or missing key,
            invalid value, unknown secret, ``secretKey`` that does not fit the hosted secret,
            a private key or passphrase that fails the checks of ``stead.secrets.keys``).
    """
    agent, connection, properties = _check_create(session, actor=actor, project=project, data=data)
    credentials.store_inline(
        session,
        actor=actor,
        project=project,
        environment_name=data.name,
        properties=properties,
        previous={},
    )
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
    """Change any field of an environment but its name (docs/api.md, Environments).

    Fields left out keep their values. A ``connectionOverrides`` item is merged into the
    stored properties (JSON merge patch, RFC 7396): the properties it names are set, ``null``
    removes an optional property (one with a default returns to it) and every property it
    leaves out is kept. A property sent back as GET returned it keeps its stored entry, so
    sending back a whole GET changes nothing. ``displayName: null`` resets the display name to
    the name.

    Raises:
        NotFound: no such environment.
        BadRequest: as for :func:`create`, for the fields given; ``null`` for a required
            property.
    """
    environment = get(session, project=project, name=name)
    fields = data.model_fields_set
    agent, connection, properties = _check_update(
        session, actor=actor, project=project, environment=environment, data=data
    )
    if properties is not environment.connection_properties:
        credentials.store_inline(
            session,
            actor=actor,
            project=project,
            environment_name=environment.name,
            properties=properties,
            previous=environment.connection_properties,
        )
        credentials.release_owned(
            session,
            actor=actor,
            project=project,
            environment_id=environment.id,
            before=environment.connection_properties,
            after=properties,
        )
    if "display_name" in fields:
        environment.display_name = data.display_name or environment.name
    if "description" in fields:
        environment.description = data.description
    if data.default_user_access_level is not None:
        environment.default_user_access_level = data.default_user_access_level
    environment.agent = agent
    environment.connection = connection
    if properties != environment.connection_properties:
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
    """Delete an environment, and the hosted secrets it owns that no other environment uses.

    Raises:
        NotFound: no such environment.
    """
    environment = get(session, project=project, name=name)
    credentials.release_owned(
        session,
        actor=actor,
        project=project,
        environment_id=environment.id,
        before=environment.connection_properties,
        after={},
    )
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
