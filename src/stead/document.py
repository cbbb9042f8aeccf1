"""A project as the declarative file describes it: what exists (:class:`State`, in the API's
wire models) and the file written from it (:func:`export_document`, :func:`dump`).

Shared by ``stead export`` and ``stead plan`` (which read the state through the SDK,
:mod:`stead.declarative.state`) and by the server's repository scaffold (which reads it from the
database); it imports neither the SDK nor the server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from stead.agents.schemas import AgentAllowList, AgentRead
from stead.connections.schemas import ConnectionRead
from stead.environments.schemas import EnvironmentRead
from stead.identity.schemas import EnvironmentAccessRead, InvitationRead, MemberRead
from stead.projects.schemas import ProjectRead
from stead.repositories.schemas import RepositoryRead
from stead.secrets.schemas import HostedSecretRead, SecretReferenceRead
from stead.state.schemas import ProjectStateRead
from stead.wire import name_key


@dataclass
class ProjectState:
    """A project as it exists, with everything in it."""

    project: ProjectRead
    connections: list[ConnectionRead] = field(default_factory=list)
    secret_references: list[SecretReferenceRead] = field(default_factory=list)
    secrets: list[HostedSecretRead] = field(default_factory=list)
    environments: list[EnvironmentRead] = field(default_factory=list)
    repository: RepositoryRead | None = None
    #: Environments whose settings the reader may not see (docs/permissions.md): names only.
    hidden_environments: list[str] = field(default_factory=list)
    members: list[MemberRead] = field(default_factory=list)
    #: Pending invitations; None when the reader may not manage members.
    invitations: list[InvitationRead] | None = None
    #: Access levels set for users, per environment name.
    environment_access: dict[str, list[EnvironmentAccessRead]] = field(default_factory=dict)

    @classmethod
    def from_read(cls, read: ProjectStateRead) -> ProjectState:
        """The state from the server's answer (``GET /v1/projects/state``)."""
        return cls(
            project=read.project,
            connections=read.connections,
            secret_references=read.secret_references,
            secrets=read.secrets,
            environments=read.environments,
            repository=read.repository,
            hidden_environments=read.hidden_environments,
            members=read.members,
            invitations=read.invitations,
            environment_access=read.environment_access,
        )

    def owned_secrets(self) -> set[str]:
        """Name keys of the hosted secrets environments own (inline values they stored:
        ``{"secretName", "set": true}``) and of the repository's deploy key; they come and go
        with their owner."""
        owned = {
            name_key(str(value["secretName"]))
            for env in self.environments
            for override in env.connection_overrides
            for value in override.connection_properties.values()
            if value.get("set") and value.get("secretName")
        }
        if self.repository is not None and self.repository.deploy_key is not None:
            owned.add(name_key(self.repository.deploy_key.secret_name))
        return owned


@dataclass
class State:
    """The account's agents (by name key) and the projects read (by name key)."""

    agents: dict[str, AgentRead]
    projects: dict[str, ProjectState]
    #: Allow-lists of the agents with restricted access, by agent name key.
    allow_lists: dict[str, AgentAllowList] = field(default_factory=dict)

    def project_name(self, project_id: str) -> str | None:
        """The name of the read project ``project_id``, or None if it was not read."""
        return next(
            (p.project.name for p in self.projects.values() if p.project.id == project_id), None
        )

    def agent_name(self, agent_id: str | None) -> str | None:
        """The name of the agent ``agent_id`` (the id itself if unknown; None for None: a secret
        reference without an agent)."""
        if agent_id is None:
            return None
        return next((a.name for a in self.agents.values() if a.agent_id == agent_id), agent_id)


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _reference_entry(state: State, r: SecretReferenceRead) -> dict[str, Any]:
    """A secret reference as the file writes it: its agent by name."""
    return _without_none(
        {
            "name": r.name,
            "agentName": state.agent_name(r.agent_id),
            "agentType": r.agent_type,
            "secretReferenceType": r.secret_reference_type,
            "secretName": r.secret_name,
            "secretKey": r.secret_key,
            "description": r.description,
        }
    )


def members_entry(ps: ProjectState) -> list[dict[str, str]]:
    """The project's people as the file writes them: each user member, then each pending
    invitation, as ``{"email", "projectRole"}`` (API clients are not written: they are made
    members by the API, not invited)."""
    people = [
        {"email": m.name, "projectRole": m.project_role}
        for m in ps.members
        if m.principal_type == "user"
    ]
    people += [{"email": i.email, "projectRole": i.project_role} for i in ps.invitations or []]
    return people


def _environment_entry(e: EnvironmentRead, access: list[EnvironmentAccessRead]) -> dict[str, Any]:
    """An environment as the file writes it: its agent by name, ``displayName`` only when it is
    not the name, properties as the server shows them (never a secret value)."""
    return _without_none(
        {
            "name": e.name,
            "displayName": e.display_name if e.display_name != e.name else None,
            "description": e.description,
            "defaultAgentName": e.default_agent_name,
            "defaultUserAccessLevel": e.default_user_access_level,
            "defaultConnections": e.default_connections,
            "connectionOverrides": [
                {
                    "connectionName": o.connection_name,
                    "connectionProperties": {
                        key: _without_none(value) for key, value in o.connection_properties.items()
                    },
                }
                for o in e.connection_overrides
            ],
            "access": [{"email": a.email, "accessLevel": a.access_level} for a in access] or None,
        }
    )


def _agent_entry(state: State, a: AgentRead) -> dict[str, Any]:
    """An agent as the file writes it (created when missing, matched by name), with its
    allow-list's entries for the projects read (by name) when its access is restricted."""
    allowed = state.allow_lists.get(name_key(a.name))
    allow_list = None
    if allowed is not None and a.restricted_access:
        allow_list = [
            {"projectName": name, "environments": list(entry.environments)}
            for pid, entry in allowed.projects.items()
            if (name := state.project_name(pid)) is not None
        ]
    return _without_none(
        {
            "name": a.name,
            "description": a.description,
            "agentType": a.agent_type,
            "cloudProvider": a.cloud_provider,
            "deployment": a.deployment,
            "enableAutoUpdates": a.enable_auto_updates,
            "restrictedAccess": a.restricted_access,
            "trackName": a.track_name,
            "allowList": allow_list,
        }
    )


def _project_entry(state: State, ps: ProjectState, used: set[str]) -> dict[str, Any]:
    """A project and everything in it as the file writes it; adds the ids of the agents it
    uses to ``used``."""
    project: dict[str, Any] = _without_none(
        {
            "name": ps.project.name,
            "description": ps.project.description,
            "warehouse": ps.project.warehouse,
            "agentDeploymentType": ps.project.agent_deployment_type,
        }
    )
    if ps.connections:
        project["connections"] = [
            c.model_dump(by_alias=True, exclude={"created_at"}) for c in ps.connections
        ]
    if ps.secret_references:
        used.update(r.agent_id for r in ps.secret_references if r.agent_id is not None)
        project["secretReferences"] = [_reference_entry(state, r) for r in ps.secret_references]
    owned = ps.owned_secrets()
    hosted = [h for h in ps.secrets if name_key(h.name) not in owned]
    if hosted:
        project["secrets"] = [{"name": h.name, "type": h.type} for h in hosted]
    if ps.environments:
        used.update(e.default_agent_id for e in ps.environments)
        project["environments"] = [
            _environment_entry(e, ps.environment_access.get(e.name, [])) for e in ps.environments
        ]
    people = members_entry(ps)
    if people:
        project["members"] = people
    if ps.repository is not None:
        project["repository"] = {
            "provider": ps.repository.provider,
            "repositoryName": ps.repository.repository_name,
            "providerParameters": ps.repository.provider_parameters,
        }
    return project


def export_document(state: State) -> dict[str, Any]:
    """The declarative file (wire form) for ``state``: applying it changes nothing.

    Agents are the customer-hosted agents the exported objects use or whose restricted
    allow-list names an exported project (the hosted agent always exists). Secret values and
    repository tokens are never known, so they are not written: hosted secrets appear with
    their name and type, inline sensitive properties as the ``{"secretName", "set": true}``
    the server shows (sending that back keeps them). Defaults the server filled in
    (``displayName``, property defaults) are written as they are. People are written as
    ``members`` (users and pending invitations) and each environment's ``access``.
    """
    used: set[str] = set()
    projects = [_project_entry(state, ps, used) for ps in state.projects.values()]
    agents = [
        entry
        for a in state.agents.values()
        if not a.hosted
        and ((entry := _agent_entry(state, a)).get("allowList") or a.agent_id in used)
    ]
    document: dict[str, Any] = {"version": 1}
    if agents:
        document["agents"] = agents
    document["projects"] = projects
    return document


def escape(value: Any) -> Any:
    """Literal text for the declarative file: every ``$`` doubled (the inverse of
    :func:`stead.declarative.spec.interpolate`)."""
    if isinstance(value, dict):
        return {key: escape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [escape(item) for item in value]
    if isinstance(value, str):
        return value.replace("$", "$$")
    return value


def dump(document: dict[str, Any]) -> str:
    """YAML text for a document in wire form, with ``$`` escaped so that reading it back gives
    the same values."""
    return yaml.safe_dump(escape(document), sort_keys=False, allow_unicode=True, width=100)
