"""Wire models of the project state read (docs/api.md, Project state)."""

from __future__ import annotations

from pydantic import Field

from stead.connections.schemas import ConnectionRead
from stead.environments.schemas import EnvironmentRead
from stead.identity.schemas import EnvironmentAccessRead, InvitationRead, MemberRead
from stead.projects.schemas import ProjectRead
from stead.repositories.schemas import RepositoryRead
from stead.secrets.schemas import HostedSecretRead, SecretReferenceRead
from stead.wire import WireModel


class ProjectStateRead(WireModel):
    """A project and everything in it, as the single-object GETs answer each part.

    ``environments`` holds the environments whose settings the caller may read; the names of
    the others (access level ``noAccess`` for the caller, docs/permissions.md) are in
    ``hiddenEnvironments``. ``repository`` is null when the project has none.

    ``members`` are the project's members (users by email, API clients by name);
    ``invitations`` the pending ones (not accepted, not expired), or null when the caller may
    not manage members (docs/permissions.md); ``environmentAccess`` the access levels set for
    users, per readable environment name.
    """

    project: ProjectRead
    connections: list[ConnectionRead] = Field(default_factory=list)
    secret_references: list[SecretReferenceRead] = Field(default_factory=list)
    secrets: list[HostedSecretRead] = Field(default_factory=list)
    environments: list[EnvironmentRead] = Field(default_factory=list)
    hidden_environments: list[str] = Field(default_factory=list)
    repository: RepositoryRead | None = None
    members: list[MemberRead] = Field(default_factory=list)
    invitations: list[InvitationRead] | None = None
    environment_access: dict[str, list[EnvironmentAccessRead]] = Field(default_factory=dict)
