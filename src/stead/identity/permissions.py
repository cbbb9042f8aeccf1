"""Who may do what: the one permission table (docs/permissions.md shows the same table).

Account roles (contract section 8): ``SUPER_ADMIN`` sees and owns everything; ``ADMIN`` manages
agents and creates projects (becoming their ``OWNER``); ``MEMBER`` reads agents and works only in
projects it is a member of. Project roles: ``OWNER``, ``CONTRIBUTOR``, ``VIEWER``.
"""

from __future__ import annotations

from typing import Final, Literal

AccountRole = Literal["SUPER_ADMIN", "ADMIN", "MEMBER"]
ProjectRole = Literal["OWNER", "CONTRIBUTOR", "VIEWER"]

ACCOUNT_ROLES: Final = ("SUPER_ADMIN", "ADMIN", "MEMBER")
PROJECT_ROLES: Final = ("OWNER", "CONTRIBUTOR", "VIEWER")

#: Account-level permissions per account role.
ACCOUNT_PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    "SUPER_ADMIN": frozenset({"project.create", "agent.read", "agent.write"}),
    "ADMIN": frozenset({"project.create", "agent.read", "agent.write"}),
    "MEMBER": frozenset({"agent.read"}),
}

#: Project-level permissions per project role. ``project.write`` covers the project's
#: connections, environments, secret references and repository.
PROJECT_PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    "OWNER": frozenset({"project.read", "project.write", "project.update", "project.delete"}),
    "CONTRIBUTOR": frozenset({"project.read", "project.write"}),
    "VIEWER": frozenset({"project.read"}),
}


def account_allows(role: str, permission: str) -> bool:
    """True if account role ``role`` grants ``permission``."""
    return permission in ACCOUNT_PERMISSIONS.get(role, frozenset())


def project_allows(role: str | None, permission: str) -> bool:
    """True if project role ``role`` (None: not a member) grants ``permission``."""
    return role is not None and permission in PROJECT_PERMISSIONS.get(role, frozenset())
