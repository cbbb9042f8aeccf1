"""Secret rules (docs/api.md, Secrets): secret references, pointers to secrets an agent resolves,
and hosted secrets, values Stead keeps encrypted itself (``stead.secrets.store``).

Hosted secrets and secret references share one namespace per project (names compared
case-insensitively), so an environment's ``{"secretName": X}`` names exactly one of them.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stead import audit
from stead.agents.models import Agent
from stead.db import named_in_project
from stead.environments.models import Environment
from stead.errors import BadRequest, Blocker, Conflict, NotFound, in_use
from stead.identity.actor import Actor
from stead.identity.permissions import PermissionDenied, environment_allows
from stead.identity.service import access_level, project_role
from stead.pagination import PageParams, paginate
from stead.projects.models import Project
from stead.repositories.models import Repository
from stead.secrets import scopes, store
from stead.secrets.keys import UNKNOWN_PASSPHRASE, KeyProblem, check_private_key
from stead.secrets.models import HostedSecret, SecretReference
from stead.secrets.schemas import (
    HOSTED_STORE,
    HostedSecretCreate,
    HostedSecretUpdate,
    SecretReferenceCreate,
)
from stead.wire import NAME_MAX, name_key


def find_reference(session: Session, *, project_id: str, name: str) -> SecretReference | None:
    """The project's secret reference called ``name`` (compared case-insensitively), or None."""
    return session.scalar(
        named_in_project(SecretReference), {"project_id": project_id, "name_key": name_key(name)}
    )


def name_in_use(session: Session, *, project_id: str, name: str) -> str | None:
    """The spelling of the project's hosted secret or secret reference called ``name``
    (case-insensitive), or None."""
    hosted = store.find(session, project_id=project_id, name=name)
    if hosted is not None:
        return hosted.name
    reference = find_reference(session, project_id=project_id, name=name)
    return reference.name if reference is not None else None


def referring_environment(
    session: Session, *, project_id: str, name: str, ignore: int | None = None
) -> str | None:
    """The name of an environment of the project (other than the one with id ``ignore``) whose
    connection properties name ``name`` as ``secretName``, or None."""
    key = name_key(name)
    for env_id, env_name, properties in session.execute(
        select(Environment.id, Environment.name, Environment.connection_properties).where(
            Environment.project_id == project_id
        )
    ):
        if env_id == ignore:
            continue
        for value in properties.values():
            secret_name = value.get("secretName") if isinstance(value, dict) else None
            if isinstance(secret_name, str) and name_key(secret_name) == key:
                return str(env_name)
    return None


def referring_reference(session: Session, *, project_id: str, name: str) -> str | None:
    """The name of a secret reference of the project in the hosted store (``Matillion hosted``)
    whose ``secretName`` is ``name`` (case-insensitive), or None."""
    key = name_key(name)
    for reference_name, secret_name in session.execute(
        select(SecretReference.name, SecretReference.secret_name).where(
            SecretReference.project_id == project_id, SecretReference.agent_type == HOSTED_STORE
        )
    ):
        if name_key(secret_name) == key:
            return str(reference_name)
    return None


def _account_agent(session: Session, *, account_id: str, agent_id: str) -> Agent:
    try:
        agent = session.get(Agent, str(uuid.UUID(agent_id)))
    except ValueError:
        agent = None
    if agent is None or agent.account_id != account_id:
        raise BadRequest(
            f"No agent {agent_id!r} in the account",
            violations=[f"agentId: no agent {agent_id!r} in the account"],
        )
    return agent


def create(
    session: Session, *, actor: Actor, project: Project, name: str, data: SecretReferenceCreate
) -> SecretReference:
    """Create the secret reference ``name`` (already checked against the path rule) in
    ``project``. ``Hosted`` arrives here as ``Matillion hosted``.

    Raises:
        BadRequest: ``agentId``, when given, is not an agent of the account.
        SecretOutOfScope: ``secretName`` lies outside the project's scope for the store (403,
            ``stead.secrets.scopes``).
        Conflict: the project already has a secret reference or hosted secret of that name
            (case-insensitive).
    """
    agent_id = None
    if data.agent_id is not None:
        agent_id = _account_agent(session, account_id=project.account_id, agent_id=data.agent_id).id
    scopes.require(
        session, project_id=project.id, store=data.agent_type, secret_name=data.secret_name
    )
    existing = name_in_use(session, project_id=project.id, name=name)
    if existing is not None:
        raise Conflict(
            f"A secret named {existing!r} already exists in this project",
            violations=[f"secretReferenceName: already used by {existing!r}"],
        )
    reference = SecretReference(
        project_id=project.id,
        name=name,
        name_key=name_key(name),
        agent_id=agent_id,
        agent_type=data.agent_type,
        secret_reference_type=data.secret_reference_type,
        secret_name=data.secret_name,
        secret_key=data.secret_key,
        description=data.description,
    )
    session.add(reference)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="secret_reference.created",
        target_type="secret_reference",
        target_id=name,
        project_id=project.id,
        details={"agentId": agent_id, "agentType": reference.agent_type},
    )
    return reference


def list_references(
    session: Session, *, project: Project, params: PageParams
) -> tuple[int, list[SecretReference]]:
    """One page of the project's secret references, oldest first: ``(total, references)``."""
    query = (
        select(SecretReference)
        .where(SecretReference.project_id == project.id)
        .order_by(SecretReference.created_at, SecretReference.id)
    )
    return paginate(session, query, params)


def get(session: Session, *, project: Project, name: str) -> SecretReference:
    """The project's secret reference ``name`` (case-insensitive).

    Raises:
        NotFound: no such reference in the project.
    """
    reference = find_reference(session, project_id=project.id, name=name)
    if reference is None:
        raise NotFound(f"Secret reference {name!r} not found in project {project.name!r}")
    return reference


def delete(session: Session, *, actor: Actor, project: Project, name: str) -> None:
    """Delete a secret reference no environment of the project refers to.

    Raises:
        NotFound: no such reference in the project.
        Conflict: an environment's connection properties name it as ``secretName``.
    """
    reference = get(session, project=project, name=name)
    env_name = referring_environment(session, project_id=project.id, name=reference.name)
    if env_name is not None:
        raise in_use(
            f"Secret reference {reference.name!r}",
            [Blocker("environment", env_name, project.name)],
            then="change the environment's property first",
        )
    audit.record(
        session,
        actor=actor,
        action="secret_reference.deleted",
        target_type="secret_reference",
        target_id=reference.name,
        project_id=project.id,
    )
    session.delete(reference)
    session.flush()


def check_value(secret_type: str, value: str, *, field: str = "value") -> str:
    """The value to store for a hosted secret of ``secret_type``: for ``PRIVATE_KEY`` a PEM RSA
    private key (normalised; see ``stead.secrets.keys``), for ``JSON`` a JSON object, for
    ``PASSWORD`` any text.

    Raises:
        BadRequest: a violation on ``field`` that never repeats the value.
    """
    if secret_type == "PRIVATE_KEY":
        try:
            return check_private_key(value, UNKNOWN_PASSPHRASE).pem
        except KeyProblem as exc:
            raise BadRequest(f"The private key {exc}", violations=[f"{field}: {exc}"]) from None
    if secret_type == "JSON":
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            parsed = None
        if not isinstance(parsed, dict):
            raise BadRequest(
                "The value of a JSON secret must be a JSON object",
                violations=[f"{field}: must be a JSON object for type JSON"],
            )
    return value


def add_hosted(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    name: str,
    secret_type: str,
    value: str,
    details: dict[str, Any] | None = None,
) -> HostedSecret:
    """Create a hosted secret with ``value`` (already checked) as version 1; audited as
    ``secret.created`` with ``details`` added (never the value).

    Raises:
        Conflict: the name is taken by a hosted secret or secret reference of the project.
    """
    existing = name_in_use(session, project_id=project.id, name=name)
    if existing is not None:
        raise Conflict(
            f"A secret named {existing!r} already exists in this project",
            violations=[f"name: already used by {existing!r}"],
        )
    secret = HostedSecret(
        project_id=project.id, name=name, name_key=name_key(name), type=secret_type, version=0
    )
    session.add(secret)
    session.flush()
    store.store_value(session, secret=secret, value=value)
    audit.record(
        session,
        actor=actor,
        action="secret.created",
        target_type="secret",
        target_id=secret.name,
        project_id=project.id,
        details={"type": secret_type, "version": secret.version, **(details or {})},
    )
    return secret


def replace_value(
    session: Session,
    *,
    actor: Actor,
    secret: HostedSecret,
    secret_type: str,
    value: str,
    details: dict[str, Any] | None = None,
) -> HostedSecret:
    """Store ``value`` (already checked) as the secret's next version, with ``secret_type``;
    audited as ``secret.updated``."""
    store.store_value(session, secret=secret, value=value)
    secret.type = secret_type
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="secret.updated",
        target_type="secret",
        target_id=secret.name,
        project_id=secret.project_id,
        details={"type": secret_type, "version": secret.version, **(details or {})},
    )
    return secret


def create_hosted(
    session: Session, *, actor: Actor, project: Project, data: HostedSecretCreate
) -> HostedSecret:
    """Create a hosted secret (docs/api.md, Secrets): the value encrypted as version 1.

    Raises:
        Conflict: the name is taken by a hosted secret or secret reference (case-insensitive).
        BadRequest: the value does not fit the type (see :func:`check_value`).
    """
    value = check_value(data.type, data.value.get_secret_value())
    return add_hosted(
        session, actor=actor, project=project, name=data.name, secret_type=data.type, value=value
    )


def list_hosted(
    session: Session, *, project: Project, params: PageParams
) -> tuple[int, list[HostedSecret]]:
    """One page of the project's hosted secrets, oldest first: ``(total, secrets)``."""
    query = (
        select(HostedSecret)
        .where(HostedSecret.project_id == project.id)
        .order_by(HostedSecret.created_at, HostedSecret.id)
    )
    return paginate(session, query, params)


def get_hosted(
    session: Session, *, project: Project, name: str, for_update: bool = False
) -> HostedSecret:
    """The project's hosted secret ``name`` (case-insensitive).

    Raises:
        NotFound: no such hosted secret in the project.
    """
    secret = store.find(session, project_id=project.id, name=name, for_update=for_update)
    if secret is None:
        raise NotFound(f"Secret {name!r} not found in project {project.name!r}")
    return secret


def _require_environment_write(
    session: Session, *, actor: Actor, project: Project, secret: HostedSecret
) -> None:
    """Replacing a secret changes every environment that uses it, directly or through a
    hosted-store secret reference: the caller needs ``environment.write`` on each
    (docs/permissions.md, "Using a stored secret").

    Raises:
        PermissionDenied: an environment using it is not the caller's to change (403).
    """
    names = {secret.name_key} | {
        name_key(reference)
        for reference, secret_name in session.execute(
            select(SecretReference.name, SecretReference.secret_name).where(
                SecretReference.project_id == project.id,
                SecretReference.agent_type == HOSTED_STORE,
            )
        )
        if name_key(secret_name) == secret.name_key
    }
    role = project_role(session, actor=actor, project_id=project.id)
    for env in session.scalars(select(Environment).where(Environment.project_id == project.id)):
        if not any(
            isinstance(v, dict) and name_key(str(v.get("secretName"))) in names
            for v in env.connection_properties.values()
        ):
            continue
        level = access_level(
            session,
            actor=actor,
            role=role,
            environment_id=env.id,
            default_level=env.default_user_access_level,
        )
        if not environment_allows(level, "environment.write"):
            raise PermissionDenied(
                f"Secret {secret.name!r} is used by environment {env.name!r}, which your access "
                f"level {level} may not change (environment.write)",
                permission="environment.write",
                project_id=project.id,
            )


def update_hosted(
    session: Session, *, actor: Actor, project: Project, name: str, data: HostedSecretUpdate
) -> HostedSecret:
    """Store a new version of a hosted secret, optionally changing its type.

    Raises:
        NotFound: no such hosted secret.
        PermissionDenied: an environment that uses it is not the caller's to change (403).
        BadRequest: the value does not fit the (new) type.
    """
    secret = get_hosted(session, project=project, name=name, for_update=True)
    _require_environment_write(session, actor=actor, project=project, secret=secret)
    secret_type = data.type or secret.type
    value = check_value(secret_type, data.value.get_secret_value())
    return replace_value(session, actor=actor, secret=secret, secret_type=secret_type, value=value)


def delete_hosted(session: Session, *, actor: Actor, project: Project, name: str) -> None:
    """Delete a hosted secret and all its versions.

    Raises:
        NotFound: no such hosted secret.
        Conflict: an environment of the project names it as ``secretName``, a secret
            reference of the hosted store names it, or it holds the repository's deploy key.
    """
    secret = get_hosted(session, project=project, name=name)
    env_name = referring_environment(session, project_id=project.id, name=secret.name)
    if env_name is not None:
        raise in_use(
            f"Hosted secret {secret.name!r}",
            [Blocker("environment", env_name, project.name)],
            then="change the environment's property first",
        )
    reference = referring_reference(session, project_id=project.id, name=secret.name)
    if reference is not None:
        raise in_use(
            f"Hosted secret {secret.name!r}",
            [Blocker("secretReference", reference, project.name)],
            then="delete the secret reference first",
        )
    repository = session.execute(
        select(Repository.repository_name, Repository.deploy_key).where(
            Repository.project_id == project.id
        )
    ).first()
    if (
        repository is not None
        and repository.deploy_key
        and (name_key(str(repository.deploy_key.get("secretName"))) == name_key(secret.name))
    ):
        raise in_use(
            f"Hosted secret {secret.name!r}",
            [Blocker("repository", repository.repository_name, project.name)],
            then="it holds the repository's deploy key and goes with the repository association",
        )
    remove_hosted(session, actor=actor, secret=secret)


def remove_hosted(session: Session, *, actor: Actor, secret: HostedSecret) -> None:
    """Delete ``secret`` and its versions (database cascade); audited as ``secret.deleted``."""
    audit.record(
        session,
        actor=actor,
        action="secret.deleted",
        target_type="secret",
        target_id=secret.name,
        project_id=secret.project_id,
    )
    session.delete(secret)
    session.flush()


def free_name(session: Session, *, project_id: str, prefix: str, suffix: str) -> str:
    """A secret name no hosted secret or secret reference of the project uses:
    ``<prefix><suffix>``, else ``<prefix><suffix>-2``, ``-3`` ... with ``prefix`` shortened
    (and stripped of trailing whitespace) to keep the name within 255 characters."""
    number = 1
    while True:
        tail = suffix if number == 1 else f"{suffix}-{number}"
        candidate = prefix[: NAME_MAX - len(tail)].rstrip() + tail
        if name_in_use(session, project_id=project_id, name=candidate) is None:
            return candidate
        number += 1
