"""Environment rules (contract section 4): agent, DWH connection and its properties.

A sensitive property given inline (``{"value": ...}``) is stored as a hosted secret named after
the environment and the property, which the environment owns: the stored property becomes
``{"secretName": "<generated>", "set": true}`` (plus ``fingerprint`` for a private key). A new
inline value becomes a new version of the owned secret; an owned secret the environment stops
referring to is deleted unless another environment refers to it.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stead import audit
from stead.agents import service as agents_service
from stead.agents.models import Agent
from stead.connections import service as connections_service
from stead.connections.models import Connection
from stead.db import named_in_project
from stead.environments.models import Environment
from stead.environments.schemas import (
    ConnectionOverride,
    ConnectionOverrideUpdate,
    EnvironmentCreate,
    EnvironmentUpdate,
)
from stead.errors import BadRequest, Conflict, NotFound
from stead.identity.permissions import PermissionDenied, environment_allows
from stead.identity.service import Actor, access_level, project_role
from stead.pagination import PageParams, paginate
from stead.projects.models import Project
from stead.secrets import service as secrets_service
from stead.secrets import store
from stead.secrets.keys import UNKNOWN_PASSPHRASE, Passphrase, check_key_pair
from stead.secrets.models import HostedSecret
from stead.secrets.schemas import HOSTED_STORE, VALUE_MAX_BYTES
from stead.secrets.service import find_reference
from stead.warehouses import StoredValue, check_properties, spec_for
from stead.wire import lookup_key, name_key

OVERRIDE = "connectionOverrides[0]"
PROPERTIES = f"{OVERRIDE}.connectionProperties"
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


def _same_reference(previous: StoredValue | None, value: StoredValue) -> bool:
    return (
        previous is not None
        and "secretName" in previous
        and name_key(previous["secretName"]) == name_key(value["secretName"])
        and previous.get("secretKey") == value.get("secretKey")
    )


def _json_item(text: str, key: str) -> str | None:
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return None
    item = parsed.get(key) if isinstance(parsed, dict) else None
    return item if isinstance(item, str) else None


def _reference(
    session: Session,
    *,
    project: Project,
    key: str,
    value: StoredValue,
    previous: StoredValue | None,
    violations: list[str],
) -> StoredValue:
    """The stored form of a ``secretName`` property: the stored entry itself when it names the
    same secret (so sending back what GET returned changes nothing), else the hosted secret's or
    secret reference's own spelling of the name."""
    if _same_reference(previous, value):
        assert previous is not None
        return previous
    where = f"{PROPERTIES}.{key}"
    secret_key = value.get("secretKey")
    hosted = store.find(session, project_id=project.id, name=value["secretName"])
    if hosted is not None:
        if hosted.type == "JSON" and secret_key is None:
            violations.append(f"{where}.secretKey: required: {hosted.name!r} is a JSON secret")
        elif hosted.type != "JSON" and secret_key is not None:
            violations.append(
                f"{where}.secretKey: only a JSON secret has keys; "
                f"{hosted.name!r} is a {hosted.type} secret"
            )
        elif secret_key is not None and (
            _json_item(store.decrypt(session, secret=hosted), secret_key) is None
        ):
            violations.append(
                f"{where}.secretKey: the JSON secret {hosted.name!r} holds no text under this key"
            )
        return {"secretName": hosted.name, "secretKey": secret_key}
    reference = find_reference(session, project_id=project.id, name=value["secretName"])
    if reference is None:
        violations.append(
            f"{where}.secretName: no secret reference or hosted secret of that name in this project"
        )
        return value
    return {"secretName": reference.name, "secretKey": secret_key}


def _known_text(session: Session, *, project: Project, value: StoredValue) -> str | None:
    """The text of a property when Stead holds it (inline, or a hosted secret); None when it
    lives in an external store."""
    if "value" in value:
        return str(value["value"])
    hosted = store.find(session, project_id=project.id, name=value["secretName"])
    if hosted is None:
        return None
    text = store.decrypt(session, secret=hosted)
    secret_key = value.get("secretKey")
    return text if secret_key is None else _json_item(text, secret_key)


def _check_key_pair(
    session: Session, *, project: Project, properties: dict[str, StoredValue], violations: list[str]
) -> None:
    """Check ``privateKey`` with its ``passphrase`` (contract section 4) as far as their values
    are at hand; an inline key is replaced by its normalised text and carries its fingerprint
    (``{"value": pem, "fingerprint": fp}``) until :func:`_store_inline` stores it."""
    key_value = properties.get("privateKey")
    text = None if key_value is None else _known_text(session, project=project, value=key_value)
    if key_value is None or text is None:
        return
    key_field = f"{PROPERTIES}.privateKey." + ("value" if "value" in key_value else "secretName")
    phrase_field = f"{PROPERTIES}.passphrase"
    passphrase: Passphrase = None
    phrase_value = properties.get("passphrase")
    if phrase_value is not None:
        phrase_text = _known_text(session, project=project, value=phrase_value)
        passphrase = UNKNOWN_PASSPHRASE if phrase_text is None else phrase_text
        phrase_field += ".value" if "value" in phrase_value else ".secretName"
    checked = check_key_pair(text, passphrase, key_field=key_field, phrase_field=phrase_field)
    if isinstance(checked, str):
        violations.append(checked)
        return
    if "value" in key_value:
        properties["privateKey"] = {"value": checked.pem, "fingerprint": checked.fingerprint}


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
    a private key, the key checks; sensitive properties of ``kept`` that the override leaves out
    stay. Sensitive inline values are still inline in the result (see :func:`_store_inline`)."""
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
        if "secretName" in value:
            properties[key] = _reference(
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
        _check_key_pair(session, project=project, properties=properties, violations=violations)
    return properties


def _owned(session: Session, *, project: Project, entry: StoredValue | None) -> HostedSecret | None:
    """The hosted secret an environment's stored entry owns (``"set": true``), or None."""
    if entry is None or not entry.get("set"):
        return None
    return store.find(session, project_id=project.id, name=entry["secretName"])


def _store_inline(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    environment_name: str,
    properties: dict[str, StoredValue],
    previous: dict[str, StoredValue],
) -> None:
    """Store each sensitive inline value as a hosted secret the environment owns (a new version
    of the one it already owns for that property, else a new secret named
    ``<environment>-<property>``) and put ``{"secretName", "set": true[, "fingerprint"]}`` in
    its place."""
    spec = spec_for(project.warehouse)
    for key, value in properties.items():
        if key not in spec.sensitive or "value" not in value:
            continue
        secret_type = "PRIVATE_KEY" if key == "privateKey" else "PASSWORD"
        details: dict[str, Any] = {"environment": environment_name, "property": key}
        secret = _owned(session, project=project, entry=previous.get(key))
        if secret is not None:
            secrets_service.replace_value(
                session,
                actor=actor,
                secret=secret,
                secret_type=secret_type,
                value=value["value"],
                details=details,
            )
        else:
            secret = secrets_service.add_hosted(
                session,
                actor=actor,
                project=project,
                name=secrets_service.free_name(
                    session, project_id=project.id, prefix=environment_name, suffix=f"-{key}"
                ),
                secret_type=secret_type,
                value=value["value"],
                details=details,
            )
        entry: StoredValue = {"secretName": secret.name, "set": True}
        if value.get("fingerprint"):
            entry["fingerprint"] = value["fingerprint"]
        properties[key] = entry


def _release(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    environment_id: int,
    before: dict[str, StoredValue],
    after: dict[str, StoredValue],
) -> None:
    """Delete the hosted secrets the environment owned in ``before`` and no longer refers to in
    ``after``, unless another environment or a hosted-store secret reference refers to them."""
    still = {name_key(v["secretName"]) for v in after.values() if "secretName" in v}
    for entry in before.values():
        secret = _owned(session, project=project, entry=entry)
        if secret is None or secret.name_key in still:
            continue
        other = secrets_service.referring_environment(
            session, project_id=project.id, name=secret.name, ignore=environment_id
        ) or secrets_service.referring_reference(session, project_id=project.id, name=secret.name)
        if other is None:
            secrets_service.remove_hosted(session, actor=actor, secret=secret)


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
    used = {
        _secret_identity(session, project_id=project.id, name=value["secretName"]): key
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
            identity = _secret_identity(session, project_id=project.id, name=value["secretName"])
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
    """Create an environment of the project (contract section 4).

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
    _store_inline(
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
    """Change any field of an environment but its name (contract section 4).

    A ``connectionOverrides`` item replaces the stored properties (defaults filled in again),
    except that sensitive properties it leaves out keep their stored references; ``null`` removes
    an optional property. A property sent back as GET returned it keeps its stored entry, so
    sending back a whole GET changes nothing. ``displayName: null`` resets the display name to
    the name.

    Raises:
        NotFound: no such environment.
        BadRequest: as for :func:`create`, for the fields given.
    """
    environment = get(session, project=project, name=name)
    fields = data.model_fields_set
    agent, connection, properties = _check_update(
        session, actor=actor, project=project, environment=environment, data=data
    )
    if properties is not environment.connection_properties:
        _store_inline(
            session,
            actor=actor,
            project=project,
            environment_name=environment.name,
            properties=properties,
            previous=environment.connection_properties,
        )
        _release(
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
    _release(
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
