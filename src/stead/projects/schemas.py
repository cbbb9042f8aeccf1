"""Wire models of projects (docs/api.md, Projects)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from stead.connections.schemas import ConnectionCreate
from stead.environments.schemas import (
    AccessLevel,
    DisplayName,
    EnvironmentCreate,
    PropertyValue,
    check_keys,
)
from stead.repositories.schemas import RepositoryCreate, RepositoryRead
from stead.secrets.schemas import (
    SECRET_REFERENCE_NAME,
    HostedSecretCreate,
    SecretReferenceCreate,
    SecretReferenceType,
)
from stead.wire import AgentDeploymentType, Description, Name, Timestamp, Warehouse, WireModel


class ProjectCreate(WireModel):
    """``POST /v1/projects`` body."""

    name: Name
    description: Description | None = None
    warehouse: Warehouse
    agent_deployment_type: AgentDeploymentType


class ProjectUpdate(WireModel):
    """``PATCH /v1/projects/{projectId}`` body: only ``name`` and ``description`` may change."""

    name: Name | None = None
    description: Description | None = None


class ProjectCreated(WireModel):
    """``201`` body of project creation (docs/api.md, Projects, DPC shape)."""

    project_id: str = Field(examples=["3f2b1c9e-5d7a-4e8b-9c1d-2a3b4c5d6e7f"])


class ProjectRead(WireModel):
    """A project as read back."""

    id: str
    name: str
    description: str | None
    warehouse: str
    agent_deployment_type: str
    created_at: Timestamp
    updated_at: Timestamp


class ProvisionConnection(WireModel):
    """The project's default warehouse connection in a provisioning request: its name only;
    ``platformConnectionType`` is ``DWH`` and ``authProvider``/``authType`` follow the project's
    warehouse (docs/api.md, Connections)."""

    name: Name = Field(examples=["finance-dwh-prod"])


class ProvisionSecretReference(SecretReferenceCreate):
    """A secret reference in a provisioning request: the body of ``POST .../secret-references/
    {name}`` plus its ``name``. ``secretReferenceType`` defaults to ``PASSWORD`` (its only value),
    and ``{projectId}`` in ``secretName`` stands for the new project's id, so a name inside the
    project's default scope (``stead/<projectId>/...``) can be given before the id exists."""

    name: Annotated[str, Field(pattern=SECRET_REFERENCE_NAME, examples=["finance-prod-redshift"])]
    secret_reference_type: SecretReferenceType = "PASSWORD"


class ProvisionEnvironment(WireModel):
    """The project's first environment in a provisioning request: the body of ``POST
    .../environments`` without ``defaultConnections`` and ``connectionOverrides``, which name
    the connection created with it; its ``connectionProperties`` come here directly."""

    name: Name = Field(examples=["prod"])
    display_name: DisplayName | None = None
    description: Description | None = None
    default_agent_id: str = Field(examples=["3f2b1c9e-5d7a-4e8b-9c1d-2a3b4c5d6e7f"])
    default_user_access_level: AccessLevel
    connection_properties: Annotated[dict[str, PropertyValue], BeforeValidator(check_keys)]


#: The members of a provisioning request's flow form and of its list form.
FLOW_FORM = ("connection", "secret", "secret_reference", "environment")
LIST_FORM = ("connections", "secret_references", "secrets", "environments")
#: At most this many items in each list of the list form.
LIST_ITEMS = 100


class ProvisionRequest(WireModel):
    """``POST /v1/provisioning`` body (docs/api.md, Provisioning): a project and what it holds,
    created in one transaction, in one of two forms.

    * The flow form (the documented provisioning flow; the console's wizard): ``connection``
      and ``environment`` are required; ``secret`` (a hosted secret) and ``secretReference``
      are optional and exclusive; the environment's ``connectionProperties`` name the one given
      (``{"secretName": ..., "secretKey": ...}``).
    * The list form (a whole project, as ``stead apply`` creates one): ``connections``,
      ``secretReferences``, ``secrets`` and ``environments``, each item the body of the single
      endpoint (a secret reference with its ``name``), all optional.

    A body gives members of one form only. ``repository`` is optional in both; with it, the
    ``Git-Provider-Access-Token`` header is required.
    """

    project: ProjectCreate
    connection: ProvisionConnection | None = None
    secret: HostedSecretCreate | None = None
    secret_reference: ProvisionSecretReference | None = None
    environment: ProvisionEnvironment | None = None
    connections: list[ConnectionCreate] = Field(default_factory=list, max_length=LIST_ITEMS)
    secret_references: list[ProvisionSecretReference] = Field(
        default_factory=list, max_length=LIST_ITEMS
    )
    secrets: list[HostedSecretCreate] = Field(default_factory=list, max_length=LIST_ITEMS)
    environments: list[EnvironmentCreate] = Field(default_factory=list, max_length=LIST_ITEMS)
    repository: RepositoryCreate | None = None

    @property
    def listed(self) -> bool:
        """True for the list form."""
        return any(f in self.model_fields_set for f in LIST_FORM)

    @model_validator(mode="after")
    def _one_form(self) -> ProvisionRequest:
        flow = [f for f in FLOW_FORM if getattr(self, f) is not None]
        if self.listed and flow:
            raise ValueError(
                "give connection, secret or secretReference and environment (the flow form), "
                "or connections, secretReferences, secrets and environments (the list form), "
                "not both"
            )
        if self.listed:
            return self
        missing = [f for f in ("connection", "environment") if getattr(self, f) is None]
        if missing:
            raise ValueError(
                f"{' and '.join(missing)} required (or give the list form: connections, "
                "secretReferences, secrets, environments)"
            )
        if self.secret is not None and self.secret_reference is not None:
            raise ValueError("give secret or secretReference, not both")
        return self


class ProvisionResult(WireModel):
    """``201`` body of ``POST /v1/provisioning``: the new project's id, the names of what the
    flow form created with it (null in the list form, whose caller named everything), and the
    repository as ``GET .../repositories`` reads it, or null."""

    project_id: str = Field(examples=["3f2b1c9e-5d7a-4e8b-9c1d-2a3b4c5d6e7f"])
    connection_name: str | None = Field(examples=["finance-dwh-prod"])
    secret_name: str | None = Field(examples=["finance-prod-redshift"])
    environment_name: str | None = Field(examples=["prod"])
    repository: RepositoryRead | None
