"""Secret reference rules (contract section 5): pointers to secrets an agent resolves."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from stead import audit
from stead.agents.models import Agent
from stead.environments.models import Environment
from stead.errors import BadRequest, Conflict, NotFound
from stead.identity.service import Actor
from stead.pagination import PageParams, paginate
from stead.projects.models import Project
from stead.secrets.models import SecretReference
from stead.secrets.schemas import SecretReferenceCreate
from stead.wire import name_key


def find_reference(session: Session, *, project_id: str, name: str) -> SecretReference | None:
    """The project's secret reference called ``name`` (compared case-insensitively), or None."""
    return session.scalar(
        select(SecretReference).where(
            SecretReference.project_id == project_id, SecretReference.name_key == name_key(name)
        )
    )


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
        BadRequest: ``agentId`` is not an agent of the account.
        Conflict: the project already has a reference of that name (case-insensitive).
    """
    agent = _account_agent(session, account_id=project.account_id, agent_id=data.agent_id)
    existing = find_reference(session, project_id=project.id, name=name)
    if existing is not None:
        raise Conflict(
            f"A secret reference named {existing.name!r} already exists",
            violations=[f"secretReferenceName: already used by {existing.name!r}"],
        )
    reference = SecretReference(
        project_id=project.id,
        name=name,
        name_key=name_key(name),
        agent_id=agent.id,
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
        details={"agentId": agent.id, "agentType": reference.agent_type},
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
    for env_name, properties in session.execute(
        select(Environment.name, Environment.connection_properties).where(
            Environment.project_id == project.id
        )
    ):
        for value in properties.values():
            secret_name = value.get("secretName") if isinstance(value, dict) else None
            if isinstance(secret_name, str) and name_key(secret_name) == reference.name_key:
                raise Conflict(
                    f"Secret reference {reference.name!r} is used by environment {env_name!r}"
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
