"""Agent rules (docs/api.md, Agents): agents, their allow-lists and their credentials."""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from stead import audit
from stead.agents.models import Agent, AgentAllowedProject
from stead.agents.schemas import (
    AgentAllowList,
    AgentAllowListAddition,
    AgentCreate,
    AgentUpdate,
    AllowedProject,
)
from stead.db import utcnow
from stead.environments.models import Environment
from stead.errors import (
    BLOCKERS_SHOWN,
    BadRequest,
    Blocker,
    Conflict,
    NotFound,
    ServiceUnavailable,
    in_use,
)
from stead.identity.actor import Actor
from stead.pagination import PageParams, paginate
from stead.projects.models import Project
from stead.secrets.models import SecretReference
from stead.secrets.store import SecretUnreadable, open_agent_secret, seal_agent_secret
from stead.wire import name_key


def create(session: Session, *, actor: Actor, data: AgentCreate) -> Agent:
    """Create a customer-hosted agent in the actor's account; it starts ``STOPPED`` and
    disconnected, with client credentials (``GET .../credentials`` shows them, ``POST
    .../credentials`` replaces the secret; docs/decisions.md, "Agent credentials").

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
    _issue_secret(session, agent)
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
            "clientId": agent.client_id,
        },
    )
    return agent


def _check_name_free(session: Session, *, agent: Agent, name: str) -> str:
    """The name key of ``name`` when no other agent of the account uses it.

    Raises:
        Conflict: another agent has this name (case-insensitive); the body carries
            ``existingId``.
    """
    key = name_key(name)
    existing = session.scalar(
        select(Agent.id).where(
            Agent.account_id == agent.account_id, Agent.name_key == key, Agent.id != agent.id
        )
    )
    if existing is not None:
        raise Conflict(
            f"An agent named {name!r} already exists",
            violations=[f"name: already used by agent {existing}"],
            extra={"existingId": existing},
        )
    return key


def update(session: Session, *, actor: Actor, agent: Agent, data: AgentUpdate) -> Agent:
    """Change the fields ``data`` gives (DPC "Update an Agent"); the others keep their values.

    Raises:
        Conflict: it is the account's hosted agent (Stead manages it), or another agent of the
            account has the new name (case-insensitive; the body carries ``existingId``).
        BadRequest: ``enableAutoUpdates`` or ``trackName`` for a ``snowflake`` agent, or
            ``enableAutoUpdates: true`` for a ``streaming`` agent; one violation per field.
    """
    if agent.is_hosted:
        raise Conflict("The account's hosted agent is managed by Stead")
    given = data.model_fields_set
    violations = []
    if agent.cloud_provider == "snowflake":
        violations += [
            f"{field}: cannot be set for a snowflake agent"
            for field, key in (
                ("enableAutoUpdates", "enable_auto_updates"),
                ("trackName", "track_name"),
            )
            if key in given
        ]
    elif data.enable_auto_updates and agent.agent_type == "streaming":
        violations.append("enableAutoUpdates: streaming agents cannot enable auto-updates")
    if violations:
        raise BadRequest("The agent cannot take these values", violations=violations)
    if data.name is not None:
        agent.name_key = _check_name_free(session, agent=agent, name=data.name)
        agent.name = data.name
    if "description" in given:
        agent.description = data.description
    if data.enable_auto_updates is not None:
        agent.enable_auto_updates = data.enable_auto_updates
    if data.restricted_access is not None:
        agent.restricted_access = data.restricted_access
    if "track_name" in given:
        agent.track_name = data.track_name
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="agent.updated",
        target_type="agent",
        target_id=agent.id,
        details={"fields": sorted(data.model_dump(by_alias=True, include=given))},
    )
    return agent


def list_agents(
    session: Session, *, actor: Actor, params: PageParams, q: str | None = None
) -> tuple[int, list[Agent]]:
    """One page of the account's agents, hosted agent included, oldest first:
    ``(total, agents)``; with ``q``, only those whose name starts with it (compared as names
    are: NFC, case-folded)."""
    query = select(Agent).where(Agent.account_id == actor.account_id)
    if q:
        query = query.where(Agent.name_key.startswith(name_key(q), autoescape=True))
    return paginate(session, query.order_by(Agent.created_at, Agent.id), params)


def usable_by_new_project(session: Session, *, actor: Actor) -> list[Agent]:
    """The account's agents a project created now may name as an environment's default agent
    (:func:`check_usable`), oldest first: every agent without ``restrictedAccess`` (no
    allow-list can hold a project that does not exist yet). Which of them fits depends on the
    project's deployment type: the hosted agent (``isHosted``) for ``FULL_SAAS``, the others for
    ``HYBRID``."""
    return list(
        session.scalars(
            select(Agent)
            .where(Agent.account_id == actor.account_id, Agent.restricted_access.is_(False))
            .order_by(Agent.created_at, Agent.id)
        )
    )


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
            secret reference still uses it (named with its project, and in ``blockedBy``).
    """
    if agent.is_hosted:
        raise Conflict("The account's hosted agent cannot be deleted")
    blockers = [
        Blocker(kind, str(name), str(project))
        for kind, model, column in (
            ("environment", Environment, Environment.default_agent_id),
            ("secretReference", SecretReference, SecretReference.agent_id),
        )
        for name, project in session.execute(
            select(model.name, Project.name)
            .join(Project, Project.id == model.project_id)
            .where(column == agent.id)
            .order_by(model.created_at, model.id)
            .limit(BLOCKERS_SHOWN + 1)
        )
    ]
    if blockers:
        raise in_use(
            f"Agent {agent.name!r}",
            blockers[:BLOCKERS_SHOWN],
            more=len(blockers) > BLOCKERS_SHOWN,
            then="give them another agent or delete them first",
        )
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
    return _write_allow_list(session, actor=actor, agent=agent, data=data, merge=False)


def add_to_allow_list(
    session: Session, *, actor: Actor, agent: Agent, data: AgentAllowListAddition
) -> AgentAllowList:
    """Add projects and environments to the agent's allow-list (DPC "Add project(s) and/or
    environment(s) to the Agent Allow list"); the projects it does not name keep their entries.
    A project already listed gets the union of its environments, where an empty list (all of the
    project's environments) absorbs any names.

    Raises:
        BadRequest: as :func:`set_allow_list`.
    """
    return _write_allow_list(session, actor=actor, agent=agent, data=data, merge=True)


def _write_allow_list(
    session: Session, *, actor: Actor, agent: Agent, data: AgentAllowList, merge: bool
) -> AgentAllowList:
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
    # project id -> {environment name key: name}; None: all of the project's environments
    wanted: dict[str, dict[str, str] | None] = {}
    for row in _allow_list_rows(session, agent):
        if merge:
            wanted[row.project_id] = (
                {name_key(name): name for name in row.environments} if row.environments else None
            )
        session.delete(row)
    session.flush()
    for given_id, allowed in data.projects.items():
        project_id = canonical[given_id]
        environments = wanted.get(project_id, {})
        if not allowed.environments or environments is None:
            wanted[project_id] = None
            continue
        for name in allowed.environments:
            environments.setdefault(name_key(name), name)
        wanted[project_id] = environments
    for project_id, environments in wanted.items():
        session.add(
            AgentAllowedProject(
                agent_id=agent.id,
                project_id=project_id,
                environments=list(environments.values()) if environments else [],
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


def _issue_secret(session: Session, agent: Agent) -> str:
    """Give ``agent`` a new client secret (and a client id, kept once it has one), sealed with
    the master keyring, never stored in clear. Returns the secret."""
    secret = secrets.token_urlsafe(32)
    if agent.client_id is None:
        agent.client_id = str(uuid.uuid4())
    seal_agent_secret(session, agent=agent, value=secret)
    agent.credentials_refreshed_at = utcnow()
    session.flush()
    return secret


def _managed_by_stead(agent: Agent) -> None:
    if agent.is_hosted:
        raise Conflict("The hosted agent's credentials are managed by Stead")


def refresh_credentials(session: Session, *, actor: Actor, agent: Agent) -> tuple[str, str]:
    """Issue a new client secret for the agent (DPC ``SECRET_REFRESH``); the previous secret
    stops working. The client id is kept.

    Returns:
        ``(client_id, client_secret)``, the secret in clear for this answer only.

    Raises:
        Conflict: the account's hosted agent, whose credentials Stead manages itself.
    """
    _managed_by_stead(agent)
    secret = _issue_secret(session, agent)
    assert agent.client_id is not None
    audit.record(
        session,
        actor=actor,
        action="agent.credentials_refreshed",
        target_type="agent",
        target_id=agent.id,
        details={"clientId": agent.client_id},
    )
    return agent.client_id, secret


def read_credentials(session: Session, *, actor: Actor, agent: Agent) -> tuple[str, str]:
    """The agent's client credentials (DPC "Get Agent Client Credentials"), each read audited as
    ``agent.credentials_read``. An agent without a readable secret (created before secrets were
    sealed) is issued one first, audited as ``agent.credentials_refreshed``
    (docs/decisions.md, "Agent credentials").

    Returns:
        ``(client_id, client_secret)``.

    Raises:
        Conflict: the account's hosted agent, whose credentials Stead manages itself.
        ServiceUnavailable: the sealed secret cannot be decrypted (its master key is not
            configured, or the row was altered).
    """
    _managed_by_stead(agent)
    try:
        secret = open_agent_secret(session, agent=agent)
    except SecretUnreadable:
        raise ServiceUnavailable(
            "The agent's client secret cannot be decrypted: is its master key configured?"
        ) from None
    if secret is None:
        secret = refresh_credentials(session, actor=actor, agent=agent)[1]
    assert agent.client_id is not None
    audit.record(
        session,
        actor=actor,
        action="agent.credentials_read",
        target_type="agent",
        target_id=agent.id,
        details={"clientId": agent.client_id},
    )
    return agent.client_id, secret


def check_usable(session: Session, *, account_id: str, agent_id: str, project: Project) -> Agent:
    """The agent an environment of ``project`` names as ``defaultAgentId``
    (docs/api.md, Environments).

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
