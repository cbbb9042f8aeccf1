"""People in a project (docs/api.md, People): members, invitations, per-user environment access.

An invitation carries a random token shown once (in the mail to the invitee, or to an account
Admin who asks for it); only its SHA-256 is stored. Its link opens the console page
``/console/invitations/{token}`` (whose path the access log writes with the token redacted);
``POST /v1/invitations/accept`` takes the token in the body. It can be accepted once, before it
expires.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from stead import audit
from stead.db import utcnow
from stead.environments import service as environment_service
from stead.environments.models import Environment
from stead.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from stead.identity import mail
from stead.identity.actor import Actor
from stead.identity.models import ApiClient, EnvironmentAccess, Invitation, ProjectMember, User
from stead.identity.permissions import PermissionDenied, account_allows
from stead.identity.schemas import (
    EnvironmentAccessRead,
    InvitationAccept,
    InvitationCreate,
    MemberRead,
)
from stead.identity.service import create_user, email_key, find_user, token_hash, user_actor
from stead.pagination import PageParams, paginate
from stead.projects.models import Project
from stead.settings import Settings
from stead.wire import format_timestamp

# --- members -----------------------------------------------------------------------------------


def list_members(
    session: Session, *, project: Project, params: PageParams
) -> tuple[int, list[tuple[ProjectMember, str]]]:
    """One page of the project's members, oldest first, each with its name (a user's email or a
    client's name)."""
    query = (
        select(ProjectMember)
        .where(ProjectMember.project_id == project.id)
        .order_by(ProjectMember.created_at, ProjectMember.id)
    )
    total, members = paginate(session, query, params)
    names = names_of(session, ids=[m.principal_id for m in members])
    return total, [(m, names.get(m.principal_id, "")) for m in members]


def member_read(member: ProjectMember, name: str) -> MemberRead:
    """The wire form of a membership; ``name`` is the user's email or the client's name."""
    return MemberRead(
        principal_type=member.principal_type,
        principal_id=member.principal_id,
        name=name,
        project_role=member.role,
        created_at=member.created_at,
        updated_at=member.updated_at,
    )


def access_read(access: EnvironmentAccess, email: str) -> EnvironmentAccessRead:
    """The wire form of a user's own access level to an environment."""
    return EnvironmentAccessRead(
        user_id=access.user_id,
        email=email,
        access_level=access.access_level,
        created_at=access.created_at,
        updated_at=access.updated_at,
    )


def names_of(session: Session, *, ids: list[str]) -> dict[str, str]:
    """Principal id -> name: a user's email or an API client's name."""
    users = session.execute(select(User.id, User.email).where(User.id.in_(ids)))
    clients = session.execute(select(ApiClient.id, ApiClient.name).where(ApiClient.id.in_(ids)))
    return {principal_id: name for principal_id, name in [*users, *clients]}


def get_member(session: Session, *, project: Project, member_id: str) -> ProjectMember:
    """The project's member whose principal id is ``member_id``.

    Raises:
        NotFound: no such member.
    """
    member = session.scalars(
        select(ProjectMember).where(
            ProjectMember.project_id == project.id, ProjectMember.principal_id == member_id
        )
    ).first()
    if member is None:
        raise NotFound(f"Member {member_id} not found in project {project.name!r}")
    return member


def _keep_an_owner(session: Session, *, project: Project, member: ProjectMember) -> None:
    """A project keeps at least one Owner once it has one: otherwise only Super Admins could
    manage it again."""
    if member.role != "OWNER":
        return
    owners = session.scalar(
        select(func.count())
        .select_from(ProjectMember)
        .where(ProjectMember.project_id == project.id, ProjectMember.role == "OWNER")
    )
    if owners == 1:
        raise Conflict(
            f"{member.principal_id} is the last Owner of project {project.name!r}",
            violations=["projectRole: the project must keep at least one OWNER"],
        )


def change_role(
    session: Session, *, actor: Actor, project: Project, member: ProjectMember, role: str
) -> ProjectMember:
    """Give ``member`` project role ``role``.

    Raises:
        Conflict: ``member`` is the project's last Owner and ``role`` is not ``OWNER``.
    """
    if role == member.role:
        return member
    _keep_an_owner(session, project=project, member=member)
    previous, member.role = member.role, role
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="member.role_changed",
        target_type=member.principal_type,
        target_id=member.principal_id,
        project_id=project.id,
        details={"from": previous, "to": role},
    )
    return member


def remove_member(
    session: Session, *, actor: Actor, project: Project, member: ProjectMember
) -> None:
    """Remove ``member`` from the project, with its access to the project's environments.

    Raises:
        Conflict: ``member`` is the project's last Owner.
    """
    _keep_an_owner(session, project=project, member=member)
    session.execute(
        delete(EnvironmentAccess).where(
            EnvironmentAccess.user_id == member.principal_id,
            EnvironmentAccess.environment_id.in_(
                select(Environment.id).where(Environment.project_id == project.id)
            ),
        )
    )
    audit.record(
        session,
        actor=actor,
        action="member.removed",
        target_type=member.principal_type,
        target_id=member.principal_id,
        project_id=project.id,
        details={"role": member.role},
    )
    session.delete(member)
    session.flush()


# --- invitations -------------------------------------------------------------------------------


def _is_user_member(session: Session, *, project_id: str, user_id: str) -> bool:
    return (
        session.scalar(
            select(ProjectMember.id).where(
                ProjectMember.project_id == project_id,
                ProjectMember.principal_type == "user",
                ProjectMember.principal_id == user_id,
            )
        )
        is not None
    )


def _refuse_member_or_invited(
    session: Session, *, project: Project, email: str, now: datetime
) -> None:
    """Raise Conflict when ``email``'s user is a member of ``project`` or has an invitation to it
    that is still pending at ``now`` (its id as ``existingId``)."""
    user = find_user(session, email=email)
    if user is not None and _is_user_member(session, project_id=project.id, user_id=user.id):
        raise Conflict(
            f"{email} is already a member of project {project.name!r}",
            violations=["email: already a member of the project"],
        )
    pending = session.scalar(
        select(Invitation.id).where(
            Invitation.project_id == project.id,
            Invitation.email_key == email_key(email),
            Invitation.accepted_at.is_(None),
            Invitation.expires_at > now,
        )
    )
    if pending is not None:
        raise Conflict(
            f"{email} already has a pending invitation to project {project.name!r}",
            violations=[f"email: already invited (invitation {pending})"],
            extra={"existingId": pending},
        )


def invite(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    data: InvitationCreate,
    settings: Settings,
) -> tuple[Invitation, str | None]:
    """Invite ``data.email`` into the project as ``data.project_role``.

    The invitation expires after ``settings.invitation_ttl_seconds``. The accept URL (the
    console page ``<public URL>/console/invitations/<token>``) goes out by mail to the invitee
    and None is returned in its place; only when an account Admin asks
    (``data.return_accept_url``) is it returned instead, for them to pass on. An inviter who
    could read the link could accept it and own an account under someone else's email.

    Returns:
        ``(invitation, accept_url or None)``.

    Raises:
        PermissionDenied: ``return_accept_url`` asked by a caller without ``invitation.reveal``.
        Conflict: no mail server is configured and the URL was not asked for; the email's user
            is already a member, or a pending invitation exists.
        UpstreamError, UpstreamTimeout: the mail server failed (nothing is stored).
    """
    reveal = data.return_accept_url
    if reveal and not account_allows(actor.role, "invitation.reveal"):
        raise PermissionDenied(
            "Only an account Admin may take an invitation's accept URL (returnAcceptUrl)",
            permission="invitation.reveal",
            project_id=project.id,
        )
    if not reveal and not settings.smtp_host:
        raise Conflict(
            "No mail server is configured (STEAD_SMTP_HOST), so the invitation cannot reach "
            "its invitee; an account Admin may create it with returnAcceptUrl and pass it on",
            violations=["returnAcceptUrl: required while no mail server is configured"],
        )
    now = utcnow()
    _refuse_member_or_invited(session, project=project, email=data.email, now=now)
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        project_id=project.id,
        email=data.email,
        email_key=email_key(data.email),
        project_role=data.project_role,
        token_hash=token_hash(token),
        invited_by=actor.name,
        expires_at=now + timedelta(seconds=settings.invitation_ttl_seconds),
    )
    session.add(invitation)
    session.flush()
    accept_url = f"{settings.public_url.rstrip('/')}/console/invitations/{token}"
    audit.record(
        session,
        actor=actor,
        action="invitation.created",
        target_type="invitation",
        target_id=invitation.id,
        project_id=project.id,
        details={
            "email": data.email,
            "projectRole": data.project_role,
            "mailSent": not reveal,
        },
    )
    if reveal:
        return invitation, accept_url
    mail.send_invitation(
        settings,
        to=data.email,
        project_name=project.name,
        project_role=data.project_role,
        inviter=actor.name,
        accept_url=accept_url,
        expires=format_timestamp(invitation.expires_at),
    )
    return invitation, None


def list_invitations(
    session: Session, *, project: Project, params: PageParams
) -> tuple[int, list[Invitation]]:
    """One page of the project's invitations (pending, accepted and expired), oldest first."""
    query = (
        select(Invitation)
        .where(Invitation.project_id == project.id)
        .order_by(Invitation.created_at, Invitation.id)
    )
    return paginate(session, query, params)


def revoke_invitation(
    session: Session, *, actor: Actor, project: Project, invitation_id: str
) -> None:
    """Withdraw a pending or expired invitation: its token stops working.

    Raises:
        NotFound: no such invitation in the project.
        Conflict: it was accepted already (remove the member instead).
    """
    invitation = session.scalars(
        select(Invitation).where(
            Invitation.id == invitation_id, Invitation.project_id == project.id
        )
    ).first()
    if invitation is None:
        raise NotFound(f"Invitation {invitation_id} not found in project {project.name!r}")
    if invitation.accepted_at is not None:
        raise Conflict(f"Invitation {invitation_id} was accepted; remove the member instead")
    audit.record(
        session,
        actor=actor,
        action="invitation.revoked",
        target_type="invitation",
        target_id=invitation.id,
        project_id=project.id,
        details={"email": invitation.email},
    )
    session.delete(invitation)
    session.flush()


def _open_invitation(session: Session, *, token: str, now: datetime) -> Invitation:
    """The invitation ``token`` opens, if it can still be accepted at ``now``.

    Raises:
        NotFound: no invitation has this token (or it was revoked).
        Conflict: it was used already, or has expired.
    """
    invitation = session.scalars(
        select(Invitation).where(Invitation.token_hash == token_hash(token))
    ).first()
    if invitation is None:
        raise NotFound("No invitation has this token")
    if invitation.accepted_at is not None:
        raise Conflict("This invitation has been used already")
    if invitation.expires_at <= now:
        raise Conflict(
            f"This invitation expired at {format_timestamp(invitation.expires_at)}; "
            "ask for a new one"
        )
    return invitation


def open_invitation(session: Session, *, token: str) -> tuple[Invitation, Project]:
    """The invitation ``token`` opens, if it can still be accepted now, and its project (for
    the page an invitation link opens).

    Raises:
        NotFound: no invitation has this token (or it was revoked).
        Conflict: it was used already, or has expired.
    """
    invitation = _open_invitation(session, token=token, now=utcnow())
    project = session.get(Project, invitation.project_id)
    if project is None:  # pragma: no cover - invitations are deleted with their project
        raise NotFound("No invitation has this token")
    return invitation, project


def _invited_user(
    session: Session, *, invitation: Invitation, data: InvitationAccept, caller: Actor | None
) -> tuple[User, bool]:
    """The user of the invited email, created (a ``MEMBER`` with ``data.password``) when there
    is none; ``(user, created)``. An existing user is linked only when ``caller`` is that user.

    Raises:
        BadRequest: a new user needs a password; an existing user must not send one (nor a
            display name).
        Unauthorized: the email has a user and the request is not logged in.
        Forbidden: the email has a user and the request is logged in as someone else.
        Conflict: the existing user is a member of the project already.
    """
    user = find_user(session, email=invitation.email)
    if user is None:
        if data.password is None:
            raise BadRequest(
                "A password is needed to create the user",
                violations=["password: required to create the user"],
            )
        user = create_user(
            session,
            email=invitation.email,
            password=data.password.get_secret_value(),
            display_name=data.display_name,
            role="MEMBER",
        )
        return user, True
    given = (("password", data.password), ("displayName", data.display_name))
    extra = [field for field, value in given if value is not None]
    if extra:
        raise BadRequest(
            f"{invitation.email} already has a user: accept with the token only",
            violations=[f"{f}: the user exists already; leave it out" for f in extra],
        )
    if caller is None:
        raise Unauthorized(
            f"{invitation.email} already has a user: log in as that user and accept with "
            "its bearer token"
        )
    if caller.type != "user" or caller.id != user.id:
        raise Forbidden("This invitation is for another user")
    if _is_user_member(session, project_id=invitation.project_id, user_id=user.id):
        raise Conflict(f"{invitation.email} is already a member of the project")
    return user, False


def accept(
    session: Session,
    *,
    data: InvitationAccept,
    caller: Actor | None,
    request_id: str | None,
    source_ip: str | None,
) -> tuple[Invitation, User, bool]:
    """Accept an invitation: create the user (with ``data.password``) or link the existing user
    of the invited email, and make them a member with the invited role.

    Linking an existing user needs that user's own login (``caller``): the token alone only
    proves access to the mailbox, not to the account that holds the email.

    Returns:
        ``(invitation, user, user_created)``.

    Raises:
        NotFound: no invitation has this token (or it was revoked).
        Conflict: the invitation was used already, has expired, or the user is a member already.
        BadRequest: a new user needs a password; an existing user must not send one.
        Unauthorized: the email has a user and the request is not logged in.
        Forbidden: the email has a user and the request is logged in as someone else.
    """
    now = utcnow()
    invitation = _open_invitation(session, token=data.token.get_secret_value(), now=now)
    user, created = _invited_user(session, invitation=invitation, data=data, caller=caller)
    actor = user_actor(user).with_request(request_id=request_id, source_ip=source_ip)
    if created:
        audit.record(
            session,
            actor=actor,
            action="user.created",
            target_type="user",
            target_id=user.id,
            details={"email": user.email},
        )
    join(session, invitation=invitation, user=user, actor=actor, now=now)
    return invitation, user, created


def join(
    session: Session,
    *,
    invitation: Invitation,
    user: User,
    actor: Actor,
    now: datetime,
    via: str | None = None,
) -> None:
    """Make ``user`` a member of the invitation's project with the invited role, mark the
    invitation accepted at ``now`` and audit ``invitation.accepted`` (``via``, e.g. ``sso``, in
    its details when given). The caller has checked the invitation is open and the user is not
    a member yet."""
    session.add(
        ProjectMember(
            project_id=invitation.project_id,
            principal_type="user",
            principal_id=user.id,
            role=invitation.project_role,
        )
    )
    invitation.accepted_at = now
    invitation.user_id = user.id
    session.flush()
    details = {"email": user.email, "projectRole": invitation.project_role}
    if via is not None:
        details["via"] = via
    audit.record(
        session,
        actor=actor,
        action="invitation.accepted",
        target_type="invitation",
        target_id=invitation.id,
        project_id=invitation.project_id,
        details=details,
    )


# --- environment access ------------------------------------------------------------------------


def list_access(
    session: Session, *, project: Project, name: str, params: PageParams
) -> tuple[int, list[tuple[EnvironmentAccess, str]]]:
    """One page of the access levels set for users in the project's environment ``name``,
    oldest first, each with the user's email.

    Raises:
        NotFound: no such environment.
    """
    environment = environment_service.get(session, project=project, name=name)
    query = (
        select(EnvironmentAccess)
        .where(EnvironmentAccess.environment_id == environment.id)
        .order_by(EnvironmentAccess.created_at, EnvironmentAccess.id)
    )
    total, rows = paginate(session, query, params)
    emails = names_of(session, ids=[r.user_id for r in rows])
    return total, [(r, emails[r.user_id]) for r in rows]


def set_access(
    session: Session, *, actor: Actor, project: Project, name: str, user_id: str, level: str
) -> tuple[EnvironmentAccess, str]:
    """Set user ``user_id``'s access level to environment ``name`` (``default`` = the project
    role decides, overriding the environment's ``defaultUserAccessLevel``).

    Returns ``(access, email)``.

    Raises:
        NotFound: no such environment, or the user is not a member of the project.
    """
    environment = environment_service.get(session, project=project, name=name)
    user = session.get(User, user_id)
    if user is None or not _is_user_member(session, project_id=project.id, user_id=user_id):
        raise NotFound(f"User {user_id} is not a member of project {project.name!r}")
    access = session.scalars(
        select(EnvironmentAccess).where(
            EnvironmentAccess.environment_id == environment.id,
            EnvironmentAccess.user_id == user_id,
        )
    ).first()
    if access is None:
        access = EnvironmentAccess(environment_id=environment.id, user_id=user_id)
        session.add(access)
    access.access_level = level
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="environment_access.set",
        target_type="environment",
        target_id=environment.name,
        project_id=project.id,
        details={"userId": user_id, "email": user.email, "accessLevel": level},
    )
    return access, user.email


def remove_access(
    session: Session, *, actor: Actor, project: Project, name: str, user_id: str
) -> None:
    """Remove user ``user_id``'s own access level to environment ``name``: the environment's
    ``defaultUserAccessLevel`` applies to them again.

    Raises:
        NotFound: no such environment, or no access level is set for the user.
    """
    environment = environment_service.get(session, project=project, name=name)
    access = session.scalars(
        select(EnvironmentAccess).where(
            EnvironmentAccess.environment_id == environment.id,
            EnvironmentAccess.user_id == user_id,
        )
    ).first()
    if access is None:
        raise NotFound(f"No access level is set for user {user_id} in {environment.name!r}")
    audit.record(
        session,
        actor=actor,
        action="environment_access.removed",
        target_type="environment",
        target_id=environment.name,
        project_id=project.id,
        details={"userId": user_id, "accessLevel": access.access_level},
    )
    session.delete(access)
    session.flush()
