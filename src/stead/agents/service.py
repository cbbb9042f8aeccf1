"""Agent rules (contract section 7): agents, their allow-lists and their credentials."""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from stead import audit
from stead.agents.models import Agent, AgentAllowedProject
from stead.agents.schemas import AgentAllowList, AgentCreate, AllowedProject
from stead.db import utcnow
from stead.environments.models import Environment
from stead.errors import BadRequest, Conflict, NotFound
from stead.identity.actor import Actor
from stead.identity.service import hash_secret
from stead.pagination import PageParams, paginate
from stead.projects.models import Project
from stead.secrets.models import SecretReference
from stead.wire import name_key


def create(session: Session, *, actor: Actor, data: AgentCreate) -> Agent:
    """Create a customer-hosted agent in the actor's account; it starts ``STOPPED``, disconnected
    and without credentials (``POST .../credentials`` issues them).

    Raises:
        Conflict: an agent of the account already has this name (case-insensitive); the body
            carries ``existingId``.
    """
    key = name_key(data.name)
    existing = session.scalar(
        select(Agent.id).where(Agent.account_id == actor.account_id, Agent.name_key == key)
    )
    if existing is not None:
        raise Conflict(
            f"An agent named {data.name!r} already exists",
            violations=[f"name: already used by agent {existing}"],
            extra={"existingId": existing},
        )
    auto_updates = data.enable_auto_updates
    if auto_updates is None:
        auto_updates = data.agent_type == "data_productivity_cloud"
    agent = Agent(
        account_id=actor.account_id,
        name=data.name,
        name_key=key,
        description=data.description,
        agent_type=data.agent_type,
        cloud_provider=data.cloud_provider,
        deployment=data.deployment,
        enable_auto_updates=auto_updates,
        restricted_access=data.restricted_access,
        track_name=data.track_name,
    )
    session.add(agent)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="agent.created",
        target_type="agent",
        target_id=agent.id,
        details={
            "name": agent.name,
            "agentType": agent.agent_type,
            "cloudProvider": agent.cloud_provider,
            "deployment": agent.deployment,
        },
    )
    return agent


def list_agents(session: Session, *, actor: Actor, params: PageParams) -> tuple[int, list[Agent]]:
    """One page of the account's agents, hosted agent included, oldest first:
    ``(total, agents)``."""
    query = (
        select(Agent)
        .where(Agent.account_id == actor.account_id)
        .order_by(Agent.created_at, Agent.id)
    )
    return paginate(session, query, params)


def get(session: Session, *, actor: Actor, agent_id: str) -> Agent:
    """The agent ``agent_id`` (canonical UUID string) of the actor's account.

    Raises:
        NotFound: no such agent in the account.
    """
    agent = session.get(Agent, agent_id)
    if agent is None or agent.account_id != actor.account_id:
        raise NotFound(f"Agent {agent_id} not found")
    return agent


def delete(session: Session, *, actor: Actor, agent: Agent) -> None:
    """Delete a customer-hosted agent and its allow-list.

    Raises:
        Conflict: it is the account's hosted agent, or an environment (as ``defaultAgentId``) or a
            secret reference still uses it.
    """
    if agent.is_hosted:
        raise Conflict("The account's hosted agent cannot be deleted")
    environments = session.scalar(
        select(Environment.id).where(Environment.default_agent_id == agent.id).limit(1)
    )
    references = session.scalar(
        select(SecretReference.id).where(SecretReference.agent_id == agent.id).limit(1)
    )
    if environments is not None or references is not None:
        used_by = "an environment" if environments is not None else "a secret reference"
        raise Conflict(f"Agent {agent.name!r} is still used by {used_by}")
    audit.record(
        session,
        actor=actor,
        action="agent.deleted",
        target_type="agent",
        target_id=agent.id,
        details={"name": agent.name},
    )
    session.delete(agent)
    session.flush()


def _allow_list_rows(session: Session, agent: Agent) -> list[AgentAllowedProject]:
    return list(
        session.scalars(
            select(AgentAllowedProject)
            .where(AgentAllowedProject.agent_id == agent.id)
            .order_by(AgentAllowedProject.id)
        )
    )


def get_allow_list(session: Session, *, agent: Agent) -> AgentAllowList:
    """The agent's allow-list: ``{"projects": {projectId: {"environments": [...]}}}``."""
    return AgentAllowList(
        projects={
            row.project_id: AllowedProject(environments=row.environments)
            for row in _allow_list_rows(session, agent)
        }
    )


def set_allow_list(
    session: Session, *, actor: Actor, agent: Agent, data: AgentAllowList
) -> AgentAllowList:
    """Replace the agent's allow-list (DPC "Set Agent Allow List"). Environment names are kept
    as given (case-insensitive duplicates dropped, order kept) and need not exist yet; an empty
    list allows all of the project's environments.

    Raises:
        BadRequest: a project id is not a UUID or names no project of the account; one violation
            ``projects.<id>: ...`` per bad id.
    """
    canonical: dict[str, str] = {}
    violations = []
    for given_id in data.projects:
        try:
            canonical[given_id] = str(uuid.UUID(given_id))
        except ValueError:
            violations.append(f"projects.{given_id}: not a valid UUID")
    known = set(
        session.scalars(
            select(Project.id).where(
                Project.account_id == agent.account_id, Project.id.in_(canonical.values())
            )
        )
    )
    violations += [
        f"projects.{given_id}: no such project in the account"
        for given_id, project_id in canonical.items()
        if project_id not in known
    ]
    if violations:
        raise BadRequest("The allow-list names invalid or unknown projects", violations=violations)
    for row in _allow_list_rows(session, agent):
        session.delete(row)
    session.flush()
    wanted: dict[str, dict[str, str]] = {}
    for given_id, allowed in data.projects.items():
        environments = wanted.setdefault(canonical[given_id], {})
        for name in allowed.environments:
            environments.setdefault(name_key(name), name)
    for project_id, environments in wanted.items():
        session.add(
            AgentAllowedProject(
                agent_id=agent.id, project_id=project_id, environments=list(environments.values())
            )
        )
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="agent.allowlist_updated",
        target_type="agent",
        target_id=agent.id,
        details={"projects": sorted(wanted)},
    )
    return get_allow_list(session, agent=agent)


def refresh_credentials(session: Session, *, actor: Actor, agent: Agent) -> tuple[str, str]:
    """Issue a new client secret for the agent (DPC ``SECRET_REFRESH``); the previous secret
    stops working. The client id is created on the first refresh and kept afterwards.

    Returns:
        ``(client_id, client_secret)``: the secret in clear, to be shown once; only its argon2id
        hash is stored.

    Raises:
        Conflict: the account's hosted agent, whose credentials Stead manages itself.
    """
    if agent.is_hosted:
        raise Conflict("The hosted agent's credentials are managed by Stead")
    secret = secrets.token_urlsafe(32)
    if agent.client_id is None:
        agent.client_id = str(uuid.uuid4())
    agent.client_secret_hash = hash_secret(secret)
    agent.credentials_refreshed_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="agent.credentials_refreshed",
        target_type="agent",
        target_id=agent.id,
        details={"clientId": agent.client_id},
    )
    return agent.client_id, secret


def check_usable(session: Session, *, account_id: str, agent_id: str, project: Project) -> Agent:
    """The agent an environment of ``project`` names as ``defaultAgentId`` (contract section 4).

    Raises:
        BadRequest: with violation ``defaultAgentId: ...`` when the agent is unknown in the account
            (or the id is not a UUID); the project is ``HYBRID`` and the agent is the hosted one;
            the project is ``FULL_SAAS`` and the agent is not the hosted one; or the agent has
            ``restrictedAccess`` and the project is not in its allow-list.
    """

    def bad(message: str) -> BadRequest:
        return BadRequest(f"defaultAgentId {message}", violations=[f"defaultAgentId: {message}"])

    try:
        canonical = str(uuid.UUID(agent_id))
    except ValueError:
        raise bad(f"no agent {agent_id!r} in the account") from None
    agent = session.get(Agent, canonical)
    if agent is None or agent.account_id != account_id:
        raise bad(f"no agent {agent_id!r} in the account")
    if project.agent_deployment_type == "HYBRID" and agent.is_hosted:
        raise bad("a HYBRID project needs a customer-hosted agent, not the hosted agent")
    if project.agent_deployment_type == "FULL_SAAS" and not agent.is_hosted:
        raise bad("a FULL_SAAS project needs the account's hosted agent")
    if agent.restricted_access:
        allowed = session.scalar(
            select(AgentAllowedProject.id).where(
                AgentAllowedProject.agent_id == agent.id,
                AgentAllowedProject.project_id == project.id,
            )
        )
        if allowed is None:
            raise bad(f"agent {agent.name!r} is restricted and does not allow this project")
    return agent
