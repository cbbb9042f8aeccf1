"""Who may do what: the one permission table (docs/permissions.md shows the same table).

Three scopes, each a mapping from a role to the permissions it grants (docs/api.md, People):

* account roles (``SUPER_ADMIN``, ``ADMIN``, ``MEMBER``) for account-wide things: agents, API
  clients, users, creating projects, the whole audit trail;
* project roles (``OWNER``, ``CONTRIBUTOR``, ``VIEWER``) inside one project. A Super Admin is
  ``OWNER`` of every project; anyone else who is not a member does not see the project (404);
* environment access levels (``admin``, ``runner``, ``readOnly``, ``noAccess``: Owner, Operator,
  Viewer, none) for one environment's settings, decided by :func:`environment_level`.

Every route declares exactly one permission through a dependency in ``stead.identity.deps``.
"""

from __future__ import annotations

from typing import Final, Literal

from stead.errors import Forbidden

AccountRole = Literal["SUPER_ADMIN", "ADMIN", "MEMBER"]
ProjectRole = Literal["OWNER", "CONTRIBUTOR", "VIEWER"]
AccessLevel = Literal["admin", "runner", "readOnly", "noAccess"]

ACCOUNT_ROLES: Final = ("SUPER_ADMIN", "ADMIN", "MEMBER")
PROJECT_ROLES: Final = ("OWNER", "CONTRIBUTOR", "VIEWER")
ACCESS_LEVELS: Final = ("admin", "runner", "readOnly", "noAccess")

#: Account-level permissions per account role.
ACCOUNT_PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    "SUPER_ADMIN": frozenset(
        {
            "project.create",
            "agent.read",
            "agent.write",
            "api_client.manage",
            "api_client.super_admin",
            "user.read",
            "user.manage",
            "user.super_admin",
            "invitation.reveal",
            "audit.read",
            "secret_scope.manage",
        }
    ),
    "ADMIN": frozenset(
        {
            "project.create",
            "agent.read",
            "agent.write",
            "api_client.manage",
            "user.read",
            "user.manage",
            "invitation.reveal",
            "audit.read",
            "secret_scope.manage",
        }
    ),
    "MEMBER": frozenset({"agent.read"}),
}

#: Project-level permissions per project role. ``project.write`` covers the project's
#: connections, secrets, secret references, repository, and creating environments.
PROJECT_PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    "OWNER": frozenset(
        {
            "project.read",
            "project.write",
            "project.update",
            "project.delete",
            "member.read",
            "member.manage",
            "audit.read",
        }
    ),
    "CONTRIBUTOR": frozenset({"project.read", "project.write", "member.read"}),
    "VIEWER": frozenset({"project.read", "member.read"}),
}

#: Environment-level permissions per access level. ``noAccess`` still lists the environment's
#: name in the project but hides its settings.
ENVIRONMENT_PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    "admin": frozenset({"environment.read", "environment.run", "environment.write"}),
    "runner": frozenset({"environment.read", "environment.run"}),
    "readOnly": frozenset({"environment.read"}),
    "noAccess": frozenset(),
}

#: The access level a project role gives where ``default`` applies ("the project role decides").
ROLE_ACCESS_LEVEL: Final[dict[str, str]] = {
    "OWNER": "admin",
    "CONTRIBUTOR": "admin",
    "VIEWER": "readOnly",
}


class PermissionDenied(Forbidden):
    """403: the caller sees the object but its role lacks ``permission``.

    Refused attempts to change something are audited (``access.denied``), in a transaction of
    their own since the request's is rolled back.
    """

    def __init__(
        self,
        detail: str,
        *,
        permission: str,
        project_id: str | None = None,
        violations: list[str] | None = None,
    ) -> None:
        super().__init__(detail, violations=violations)
        self.permission = permission
        self.project_id = project_id


def account_allows(role: str, permission: str) -> bool:
    """True if account role ``role`` grants ``permission``."""
    return permission in ACCOUNT_PERMISSIONS.get(role, frozenset())


def project_allows(role: str | None, permission: str) -> bool:
    """True if project role ``role`` (None: not a member) grants ``permission``."""
    return role is not None and permission in PROJECT_PERMISSIONS.get(role, frozenset())


def environment_allows(level: str, permission: str) -> bool:
    """True if environment access level ``level`` grants ``permission``."""
    return permission in ENVIRONMENT_PERMISSIONS.get(level, frozenset())


def environment_level(
    *, project_role: str | None, is_user: bool, user_level: str | None, default_level: str
) -> str:
    """The effective access level of a principal in one environment.

    Args:
        project_role: the principal's project role (``OWNER`` for Super Admins), None if none.
        is_user: False for API clients, whose project role alone decides (the environment's
            ``defaultUserAccessLevel`` and per-user access apply to users, docs/api.md, People).
        user_level: the user's own access to this environment, if one was set.
        default_level: the environment's ``defaultUserAccessLevel``.

    Owners always administer every environment of their project. For other users the level set
    for them decides, else the environment's default; ``default`` means the project role decides
    (:data:`ROLE_ACCESS_LEVEL`).
    """
    if project_role is None:
        return "noAccess"
    if project_role == "OWNER" or not is_user:
        return ROLE_ACCESS_LEVEL[project_role]
    level = user_level or default_level
    return ROLE_ACCESS_LEVEL[project_role] if level == "default" else level
