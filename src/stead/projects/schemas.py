"""Wire models of projects (docs/api.md, Projects)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from stead.environments.schemas import AccessLevel, DisplayName, PropertyValue, check_keys
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


class ProvisionRequest(WireModel):
    """``POST /v1/provisioning`` body (docs/api.md, Provisioning): the documented provisioning
    flow in one request, created in one transaction. ``secret`` (a hosted secret) and
    ``secretReference`` are optional and exclusive; the environment's ``connectionProperties``
    name the one given (``{"secretName": ..., "secretKey": ...}``). ``repository`` is optional;
    with it, the ``Git-Provider-Access-Token`` header is required."""

    project: ProjectCreate
    connection: ProvisionConnection
    secret: HostedSecretCreate | None = None
    secret_reference: ProvisionSecretReference | None = None
    environment: ProvisionEnvironment
    repository: RepositoryCreate | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> ProvisionRequest:
        if self.secret is not None and self.secret_reference is not None:
            raise ValueError("give secret or secretReference, not both")
        return self


class ProvisionResult(WireModel):
    """``201`` body of ``POST /v1/provisioning``: the new project's id and the names of what was
    created with it; the repository as ``GET .../repositories`` reads it, or null."""

    project_id: str = Field(examples=["3f2b1c9e-5d7a-4e8b-9c1d-2a3b4c5d6e7f"])
    connection_name: str = Field(examples=["finance-dwh-prod"])
    secret_name: str | None = Field(examples=["finance-prod-redshift"])
    environment_name: str = Field(examples=["prod"])
    repository: RepositoryRead | None
