"""The group mapping: which roles a person's groups at the company's identity provider give
(docs/sso.md, "Groups"). Parsing only, with no database, so that the settings can check it at
startup; :mod:`stead.identity.group_roles` applies it.

One mapping, ``STEAD_OIDC_GROUP_ROLES``, serves both ways groups reach Stead: the groups claim
of a single sign-on login and SCIM group membership. It is a JSON object from a group name to
either an account role (``"ADMIN"``) or an object from a project name to a project role
(``{"Sales analytics": "CONTRIBUTOR"}``)::

    {"stead-admins": "ADMIN",
     "everyone": "MEMBER",
     "sales": {"Sales analytics": "CONTRIBUTOR"},
     "sales-leads": {"Sales analytics": "OWNER", "Forecasts": "VIEWER"}}

Group names match exactly (case-sensitive: identity providers name groups by display name,
path or object id). Project names match like everywhere in Stead (case-insensitive). Roles
are Stead's own (docs/permissions.md), in any case.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from stead.identity.permissions import ACCOUNT_ROLES, PROJECT_ROLES
from stead.wire import name_key

#: The setting the mapping comes from, named in every error about it.
SETTING = "STEAD_OIDC_GROUP_ROLES"

# Rank of each role: the first of each tuple is the highest (permissions.py lists them so).
_ACCOUNT_RANK = {role: rank for rank, role in enumerate(reversed(ACCOUNT_ROLES))}
_PROJECT_RANK = {role: rank for rank, role in enumerate(reversed(PROJECT_ROLES))}


@dataclass(frozen=True)
class GroupRoles:
    """A parsed group mapping (see the module's docstring).

    Attributes:
        account_roles: group name -> account role (``SUPER_ADMIN``, ``ADMIN``, ``MEMBER``).
        project_roles: group name -> {project name key (:func:`stead.wire.name_key`) ->
            project role (``OWNER``, ``CONTRIBUTOR``, ``VIEWER``)}.
    """

    account_roles: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    project_roles: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @property
    def managed_projects(self) -> frozenset[str]:
        """The name keys of every project the mapping names: the memberships it manages."""
        return frozenset(key for roles in self.project_roles.values() for key in roles)

    def __bool__(self) -> bool:
        return bool(self.account_roles or self.project_roles)

    def account_role(self, groups: Iterable[str]) -> str | None:
        """The highest account role ``groups`` are mapped to; None when none maps one."""
        roles = [self.account_roles[g] for g in groups if g in self.account_roles]
        return max(roles, key=_ACCOUNT_RANK.__getitem__) if roles else None

    def project_roles_for(self, groups: Iterable[str]) -> dict[str, str]:
        """Project name key -> the highest project role ``groups`` are mapped to there."""
        wanted: dict[str, str] = {}
        for group in groups:
            for key, role in self.project_roles.get(group, {}).items():
                if key not in wanted or _PROJECT_RANK[role] > _PROJECT_RANK[wanted[key]]:
                    wanted[key] = role
        return wanted


def parse_group_roles(text: str) -> GroupRoles:
    """Parse the JSON of ``STEAD_OIDC_GROUP_ROLES`` (empty or blank: no mapping).

    Roles may be written in any case; project names are kept by their name key, so naming one
    project twice in a group (in two spellings) is an error rather than a guess.

    Raises:
        ValueError: not JSON, not an object, a group that maps to something other than a role
            string or an object of project roles, an unknown account or project role, an empty
            group or project name, or one project named twice in a group. The message starts
            with ``STEAD_OIDC_GROUP_ROLES`` and names the group.
    """
    if not text.strip():
        return GroupRoles()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{SETTING}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{SETTING}: must be a JSON object of group name -> role")
    account: dict[str, str] = {}
    projects: dict[str, Mapping[str, str]] = {}
    for group, value in data.items():
        if not group.strip():
            raise ValueError(f"{SETTING}: a group name is empty")
        if isinstance(value, str):
            account[group] = _role(value, ACCOUNT_ROLES, f"group {group!r}", "account role")
        elif isinstance(value, dict):
            roles: dict[str, str] = {}
            for project, role in value.items():
                where = f"group {group!r}, project {project!r}"
                if not project.strip():
                    raise ValueError(f"{SETTING}: group {group!r} names an empty project")
                if not isinstance(role, str):
                    raise ValueError(f"{SETTING}: {where}: the project role must be a string")
                key = name_key(project)
                if key in roles:
                    raise ValueError(f"{SETTING}: {where}: the project is named twice")
                roles[key] = _role(role, PROJECT_ROLES, where, "project role")
            projects[group] = MappingProxyType(roles)
        else:
            raise ValueError(
                f"{SETTING}: group {group!r} must map to an account role or to an object of "
                "project name -> project role"
            )
    return GroupRoles(
        account_roles=MappingProxyType(account), project_roles=MappingProxyType(projects)
    )


def _role(value: str, known: tuple[str, ...], where: str, kind: str) -> str:
    role = value.strip().upper()
    if role not in known:
        raise ValueError(
            f"{SETTING}: {where}: unknown {kind} {value!r} (one of {', '.join(known)})"
        )
    return role
