"""Wire models of projects (docs/api.md, Projects)."""

from __future__ import annotations

from pydantic import Field

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
