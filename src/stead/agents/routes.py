"""HTTP routes of agents (docs/api.md, Agents)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Response

from stead.agents import service
from stead.agents.models import Agent
from stead.agents.schemas import (
    AgentAllowList,
    AgentAllowListAddition,
    AgentCreate,
    AgentCredentials,
    AgentRead,
    AgentUpdate,
    CredentialsRequest,
)
from stead.identity.actor import Actor
from stead.identity.deps import AgentReader, AgentWriter, parse_uuid
from stead.pagination import Page
from stead.pipeline.paging import PageDep
from stead.pipeline.transaction import SessionDep, WriteSessionDep, make_router

router = make_router(prefix="/agents", tags=["agents"])

AgentIdPath = Annotated[str, Path(alias="agentId", description="agent UUID")]


def _agent(session: SessionDep, actor: Actor, agent_id: str) -> Agent:
    return service.get(session, actor=actor, agent_id=parse_uuid(agent_id, field="agentId"))


@router.post("", status_code=201, response_model=AgentRead)
def create_agent(
    data: AgentCreate, actor: AgentWriter, session: SessionDep, response: Response
) -> AgentRead:
    """Create an agent (DPC). Super Admins and Admins only."""
    agent = service.create(session, actor=actor, data=data)
    response.headers["Location"] = f"/v1/agents/{agent.id}"
    return AgentRead.model_validate(agent)


@router.get("", response_model=Page[AgentRead])
def list_agents(actor: AgentReader, session: SessionDep, params: PageDep) -> Page[AgentRead]:
    """List the account's agents, the hosted agent included, oldest first."""
    total, rows = service.list_agents(session, actor=actor, params=params)
    return Page(
        page=params.page,
        size=params.size,
        total=total,
        results=[AgentRead.model_validate(a) for a in rows],
    )


@router.get("/{agentId}", response_model=AgentRead)
def get_agent(agent_id: AgentIdPath, actor: AgentReader, session: SessionDep) -> AgentRead:
    """Read one agent (never its client secret)."""
    return AgentRead.model_validate(_agent(session, actor, agent_id))


@router.patch("/{agentId}", status_code=202, response_model=AgentRead)
def update_agent(
    data: AgentUpdate, agent_id: AgentIdPath, actor: AgentWriter, session: SessionDep
) -> AgentRead:
    """Change an agent's name, description, ``enableAutoUpdates``, ``restrictedAccess`` or
    ``trackName`` (DPC "Update an Agent": 202). The answer carries the agent as now stored."""
    agent = service.update(session, actor=actor, agent=_agent(session, actor, agent_id), data=data)
    return AgentRead.model_validate(agent)


@router.delete("/{agentId}", status_code=202, response_class=Response)
def delete_agent(agent_id: AgentIdPath, actor: AgentWriter, session: SessionDep) -> Response:
    """Delete an agent that no environment or secret reference uses (the hosted agent stays).
    Answers 202 with no body, as DPC does; the agent is gone when the answer arrives."""
    service.delete(session, actor=actor, agent=_agent(session, actor, agent_id))
    return Response(status_code=202)


@router.get("/{agentId}/allowlist", response_model=AgentAllowList)
def get_allow_list(
    agent_id: AgentIdPath, actor: AgentReader, session: SessionDep
) -> AgentAllowList:
    """The projects (and environments) a restricted agent may serve (DPC)."""
    return service.get_allow_list(session, agent=_agent(session, actor, agent_id))


@router.put("/{agentId}/allowlist", response_model=AgentAllowList)
def set_allow_list(
    data: AgentAllowList, agent_id: AgentIdPath, actor: AgentWriter, session: SessionDep
) -> AgentAllowList:
    """Replace the allow-list; every project id must name a project of the account."""
    return service.set_allow_list(
        session, actor=actor, agent=_agent(session, actor, agent_id), data=data
    )


@router.patch("/{agentId}/allowlist", response_model=AgentAllowList)
def add_to_allow_list(
    data: AgentAllowListAddition, agent_id: AgentIdPath, actor: AgentWriter, session: SessionDep
) -> AgentAllowList:
    """Add projects and environments to the allow-list (DPC); answers the whole list."""
    return service.add_to_allow_list(
        session, actor=actor, agent=_agent(session, actor, agent_id), data=data
    )


@router.get("/{agentId}/credentials", response_model=AgentCredentials)
def read_credentials(
    agent_id: AgentIdPath, actor: AgentWriter, session: WriteSessionDep, response: Response
) -> AgentCredentials:
    """The agent's client id and secret (DPC "Get Agent Client Credentials"). Super Admins and
    Admins only; every read is an audit event (``agent.credentials_read``)."""
    client_id, secret = service.read_credentials(
        session, actor=actor, agent=_agent(session, actor, agent_id)
    )
    response.headers["Cache-Control"] = "no-store"
    return AgentCredentials(client_id=client_id, client_secret=secret)


@router.post("/{agentId}/credentials", response_model=AgentCredentials)
def refresh_credentials(
    data: CredentialsRequest,
    agent_id: AgentIdPath,
    actor: AgentWriter,
    session: SessionDep,
    response: Response,
) -> AgentCredentials:
    """``{"action": "SECRET_REFRESH"}``: replace the client secret; the old one stops working."""
    client_id, secret = service.refresh_credentials(
        session, actor=actor, agent=_agent(session, actor, agent_id)
    )
    response.headers["Cache-Control"] = "no-store"
    return AgentCredentials(client_id=client_id, client_secret=secret)
