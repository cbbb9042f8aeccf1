"""Wire models of agents (docs/api.md, Agents).

Agent types, cloud providers and deployments follow the DPC reference page "Create a new Agent"
(docs.maia.ai, Agents): each deployment belongs to one cloud provider and is available to
``data_productivity_cloud`` agents, ``streaming`` agents, or both.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
)

from stead.wire import CI, Description, Name, Text, Timestamp, WireModel

AgentType = Annotated[Literal["data_productivity_cloud", "streaming"], CI]
AGENT_TYPES: tuple[str, ...] = get_args(get_args(AgentType)[0])

#: deployment -> (its cloud provider, the agent types it serves). Source: DPC "Create a new Agent".
DEPLOYMENTS: dict[str, tuple[str, frozenset[str]]] = {
    "fargate": ("aws", frozenset(AGENT_TYPES)),
    "eks": ("aws", frozenset(AGENT_TYPES)),
    "container app": ("azure", frozenset({"data_productivity_cloud"})),
    "aks": ("azure", frozenset(AGENT_TYPES)),
    "aci": ("azure", frozenset({"streaming"})),
    "native app": ("snowflake", frozenset({"data_productivity_cloud"})),
    "gke": ("gcp", frozenset(AGENT_TYPES)),
    "gce": ("gcp", frozenset({"streaming"})),
}


def _google_cloud_alias(value: Any) -> Any:
    """DPC accepts ``google_cloud`` as an alias of ``gcp``."""
    if isinstance(value, str) and value.casefold() == "google_cloud":
        return "gcp"
    return value


CloudProvider = Annotated[
    Literal["aws", "azure", "gcp", "snowflake"], CI, BeforeValidator(_google_cloud_alias)
]
Deployment = Annotated[
    Literal["fargate", "eks", "container app", "aks", "aci", "native app", "gke", "gce"], CI
]
CredentialsAction = Annotated[Literal["SECRET_REFRESH"], CI]
TrackName = Annotated[Text, Field(min_length=1, max_length=64, examples=["current"])]


class AgentCreate(WireModel):
    """``POST /v1/agents`` body (DPC).

    Cross-field rules (DPC "Create a new Agent"): ``snowflake`` agents are
    ``data_productivity_cloud`` only; ``deployment`` must belong to ``cloudProvider`` and serve
    ``agentType``; a ``streaming`` agent cannot enable auto-updates. ``enableAutoUpdates``
    defaults to true for ``data_productivity_cloud`` agents and false for ``streaming`` ones.
    """

    name: Name
    description: Description | None = None
    agent_type: AgentType
    cloud_provider: CloudProvider
    deployment: Deployment
    enable_auto_updates: StrictBool | None = None
    restricted_access: StrictBool = False
    track_name: TrackName | None = None

    @field_validator("cloud_provider")
    @classmethod
    def _provider_serves_type(cls, value: str, info: ValidationInfo) -> str:
        if value == "snowflake" and info.data.get("agent_type") == "streaming":
            raise ValueError("snowflake agents must be of agentType data_productivity_cloud")
        return value

    @field_validator("deployment")
    @classmethod
    def _deployment_fits(cls, value: str, info: ValidationInfo) -> str:
        provider, types = DEPLOYMENTS[value]
        given_provider = info.data.get("cloud_provider")
        if given_provider is not None and given_provider != provider:
            valid = sorted(d for d, (p, _) in DEPLOYMENTS.items() if p == given_provider)
            raise ValueError(
                f"{value!r} is not a deployment of {given_provider}; use one of {', '.join(valid)}"
            )
        agent_type = info.data.get("agent_type")
        if agent_type is not None and agent_type not in types:
            raise ValueError(f"{value!r} is not available to {agent_type} agents")
        return value

    @field_validator("enable_auto_updates")
    @classmethod
    def _streaming_without_updates(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        if value and info.data.get("agent_type") == "streaming":
            raise ValueError("streaming agents cannot enable auto-updates")
        return value


class AgentUpdate(WireModel):
    """``PATCH /v1/agents/{agentId}`` body (DPC "Update an Agent"): every field optional; a field
    left out keeps its value, ``null`` clears ``description`` or ``trackName``.

    Rules (same page): ``snowflake`` agents take neither ``enableAutoUpdates`` nor ``trackName``;
    a ``streaming`` agent cannot enable auto-updates (checked against the stored agent by
    ``agents.service.update``).
    """

    name: Name | None = None
    description: Description | None = None
    enable_auto_updates: StrictBool | None = None
    restricted_access: StrictBool | None = None
    track_name: TrackName | None = None

    @field_validator("name", "enable_auto_updates", "restricted_access")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Runs only for a value the body gives: leaving the field out keeps it.
        if value is None:
            raise ValueError("must not be null (leave the field out to keep it)")
        return value


class VersionDetails(WireModel):
    """``versionDetails`` of an agent: the release track it follows and the version it last
    reported running (null until an agent reports one: Stead records agents, it does not run
    them)."""

    track_name: str | None = Field(examples=["current"])
    current_version: str | None = Field(default=None, examples=[None])


class AgentRead(WireModel):
    """An agent as read back. ``clientId`` is set from the agent's creation; the client secret
    is never part of it (``GET .../credentials`` shows it). ``agentStatus`` is lower-case as in
    the DPC examples."""

    agent_id: str = Field(validation_alias=AliasChoices("id", "agentId"))
    name: str
    description: str | None
    agent_type: str
    cloud_provider: str
    deployment: str
    agent_status: Annotated[str, BeforeValidator(str.lower)] = Field(examples=["running"])
    connected: bool
    enable_auto_updates: bool
    restricted_access: bool
    track_name: str | None
    hosted: bool = Field(validation_alias=AliasChoices("is_hosted", "hosted"))
    client_id: str | None
    created_at: Timestamp
    updated_at: Timestamp

    version_details: VersionDetails = Field(
        default_factory=lambda data: VersionDetails(track_name=data["track_name"])
    )


class AllowedProject(WireModel):
    """One project of an allow-list: the environment names the agent may serve there."""

    environments: list[Name] = Field(default_factory=list)


class AgentAllowList(WireModel):
    """``GET``/``PUT /v1/agents/{agentId}/allowlist`` body (DPC shape):
    ``{"projects": {"<projectId>": {"environments": ["<name>", ...]}}}``.

    Enforced only while the agent has ``restrictedAccess`` (DPC "Set Agent Allow List").
    """

    projects: dict[str, AllowedProject]


class AgentAllowListAddition(AgentAllowList):
    """``PATCH /v1/agents/{agentId}/allowlist`` body (DPC "Add project(s) and/or environment(s)
    to the Agent Allow list"): the same shape as the allow-list, at least one project."""

    projects: dict[str, AllowedProject] = Field(min_length=1)


class CredentialsRequest(WireModel):
    """``POST /v1/agents/{agentId}/credentials`` body: ``{"action": "SECRET_REFRESH"}`` (DPC)."""

    action: CredentialsAction


class AgentCredentials(WireModel):
    """An agent's client credentials (DPC "Get Agent Client Credentials" and the
    ``SECRET_REFRESH`` answer); only these two answers carry ``clientSecret``."""

    client_id: str
    client_secret: str
