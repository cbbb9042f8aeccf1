"""Imports every table so ``Base.metadata`` is complete (migrations, tests)."""

from stead.agents.models import Agent, AgentAllowedProject
from stead.audit.models import AuditEvent
from stead.connections.models import Connection
from stead.console.sessions import ConsoleSession
from stead.db import Base
from stead.environments.models import Environment
from stead.idempotency.models import IdempotencyKey
from stead.identity.models import (
    Account,
    ApiClient,
    CliCode,
    CliGrant,
    CliRefreshToken,
    EnvironmentAccess,
    Invitation,
    PasswordReset,
    ProjectMember,
    SsoIdentity,
    SsoRequest,
    User,
)
from stead.pipeline.ratelimit import RateLimitCounter
from stead.projects.models import Project, ProjectListBucket
from stead.repositories.models import Repository
from stead.scim.models import ScimGroup, ScimGroupMember, ScimToken, ScimUser
from stead.secrets.models import (
    HostedSecret,
    HostedSecretVersion,
    KeyCheck,
    SecretReference,
    SecretScope,
)

__all__ = [
    "Account",
    "Agent",
    "AgentAllowedProject",
    "ApiClient",
    "AuditEvent",
    "Base",
    "CliCode",
    "CliGrant",
    "CliRefreshToken",
    "Connection",
    "ConsoleSession",
    "Environment",
    "EnvironmentAccess",
    "HostedSecret",
    "HostedSecretVersion",
    "IdempotencyKey",
    "KeyCheck",
    "Invitation",
    "PasswordReset",
    "Project",
    "ProjectListBucket",
    "ProjectMember",
    "SsoIdentity",
    "SsoRequest",
    "RateLimitCounter",
    "Repository",
    "ScimGroup",
    "ScimGroupMember",
    "ScimToken",
    "ScimUser",
    "SecretReference",
    "SecretScope",
    "User",
]
