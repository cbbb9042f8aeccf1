"""Roles from a person's groups at the company's identity provider (docs/sso.md, "Groups"):
:func:`apply_group_roles` gives a user the roles of a :class:`GroupRoles` mapping
(:mod:`stead.identity.group_mapping` parses it, and documents its form).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stead import audit
from stead.errors import Conflict
from stead.identity import members
from stead.identity.actor import Actor
from stead.identity.group_mapping import GroupRoles, parse_group_roles
from stead.identity.models import ProjectMember, User
from stead.identity.users import change_role
from stead.projects.models import Project

__all__ = ["GroupRoles", "apply_group_roles", "parse_group_roles"]


def apply_group_roles(
    session: Session, *, user: User, groups: Iterable[str], mapping: GroupRoles, actor: Actor
) -> None:
    """Give ``user`` the roles ``mapping`` maps their ``groups`` to.

    * Account role: the highest account role any of the groups maps to; when none maps one the
      user's role is left as it is. A new account role signs the user out everywhere
      (:func:`stead.identity.users.sign_out_everywhere`, as an admin's role change does) and is
      audited ``user.role_changed`` with ``via: groups``. The account's last enabled Super
      Admin keeps the role (``user.role_sync_skipped``): nobody could manage Super Admins
      again.
    * Projects the mapping names (that exist): the user becomes a member with the highest
      project role their groups map to there (``member.added``), their role is changed
      (``member.role_changed``), or, when no group of theirs maps to the project any more,
      their membership ends (``member.removed``). A change that would leave a project without
      an Owner is not made (``member.sync_skipped``, the reason in its details): the project's
      other Owners decide.
    * Memberships in projects the mapping does not name (granted by hand, by invitation) are
      left alone.

    Changes are flushed and audited by ``actor``; the caller commits. Raises nothing of its own.
    """
    groups = set(groups)
    role = mapping.account_role(groups)
    if role is not None and role != user.role and _last_super_admin(session, user):
        audit.record(
            session,
            actor=actor,
            action="user.role_sync_skipped",
            target_type="user",
            target_id=user.id,
            details={"email": user.email, "wanted": role, "reason": "the last Super Admin"},
        )
    elif role is not None and role != user.role:
        change_role(session, actor=actor, user=user, role=role, via="groups")
    managed = mapping.managed_projects
    if not managed:
        return
    wanted = mapping.project_roles_for(groups)
    projects = session.scalars(
        select(Project)
        .where(Project.account_id == user.account_id, Project.name_key.in_(managed))
        .order_by(Project.seq)
    ).all()
    held = {
        m.project_id: m
        for m in session.scalars(
            select(ProjectMember).where(
                ProjectMember.principal_type == "user",
                ProjectMember.principal_id == user.id,
                ProjectMember.project_id.in_([p.id for p in projects]),
            )
        )
    }
    for project in projects:
        want, member = wanted.get(project.name_key), held.get(project.id)
        try:
            if want is not None and member is None:
                session.add(
                    ProjectMember(
                        project_id=project.id,
                        principal_type="user",
                        principal_id=user.id,
                        role=want,
                    )
                )
                session.flush()
                audit.record(
                    session,
                    actor=actor,
                    action="member.added",
                    target_type="user",
                    target_id=user.id,
                    project_id=project.id,
                    details={"email": user.email, "role": want, "via": "groups"},
                )
            elif want is not None and member is not None:
                members.change_role(session, actor=actor, project=project, member=member, role=want)
            elif member is not None:
                members.remove_member(session, actor=actor, project=project, member=member)
        except Conflict as exc:
            # Only the last-Owner rule raises here, before anything is changed.
            audit.record(
                session,
                actor=actor,
                action="member.sync_skipped",
                target_type="user",
                target_id=user.id,
                project_id=project.id,
                details={"email": user.email, "wanted": want, "reason": exc.detail},
            )


def _last_super_admin(session: Session, user: User) -> bool:
    """True when ``user`` is the account's only enabled ``SUPER_ADMIN``."""
    if user.role != "SUPER_ADMIN":
        return False
    others = session.scalar(
        select(func.count())
        .select_from(User)
        .where(
            User.account_id == user.account_id,
            User.role == "SUPER_ADMIN",
            User.disabled_at.is_(None),
            User.id != user.id,
        )
    )
    return not others
