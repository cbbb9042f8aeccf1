"""Users: logging in with a lockout per (email, source address) and back-off, and the account
admin's controls: list, disable, change role, unlock, reset a password, sign out everywhere.

Lockout follows the OWASP Authentication Cheat Sheet ("Protect Against Automated Attacks":
account lockout with an increasing lock time, counted so that an attacker cannot lock out a user
who logs in from elsewhere). Failures are counted per ``(email, source address)`` whether or
not a user has the email: the answers to an unknown email and to a known one are the same.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from stead import audit
from stead.console.sessions import end_user_sessions
from stead.db import utcnow
from stead.errors import BadRequest, Conflict, NotFound, Unauthorized
from stead.identity import mail
from stead.identity.actor import Actor
from stead.identity.grants import revoke_user_grants
from stead.identity.models import LoginFailures, PasswordReset, SsoIdentity, User
from stead.identity.permissions import PermissionDenied, account_allows
from stead.identity.service import (
    email_key,
    find_user,
    hash_secret,
    token_hash,
    user_actor,
    verify_secret,
)
from stead.pagination import PageParams, paginate
from stead.scim.models import ScimUser
from stead.settings import Settings
from stead.wire import format_timestamp

INVALID_LOGIN = "Invalid email or password"
#: The refusal of a right password while ``STEAD_PASSWORD_LOGIN=super-admins``.
SSO_ONLY = (
    "Password sign-in is kept for Super Admins on this server; sign in with {provider} "
    "instead (docs/sso.md)"
)
#: Stands for a request without a client address (kept in ``login_failures.source``).
UNKNOWN_SOURCE = "unknown"


def lock_seconds(failures: int, settings: Settings) -> int:
    """How long ``(email, source)`` is locked after its ``failures``-th consecutive failure.

    Nothing before ``settings.login_max_failures``; then ``login_backoff_seconds``, doubled by
    each further failure, at most ``login_lock_seconds``. With the defaults (5, 60 s, 900 s):
    60, 120, 240, 480, 900, 900 ... seconds.
    """
    beyond = failures - settings.login_max_failures
    if beyond < 0:
        return 0
    return int(
        min(settings.login_lock_seconds, settings.login_backoff_seconds * 2 ** min(beyond, 30))
    )


def _refusal(until_seconds: int | None) -> Unauthorized:
    if until_seconds is None:
        return Unauthorized(INVALID_LOGIN)
    return Unauthorized(
        f"Too many failed logins for this email from your address; try again in {until_seconds} s",
        headers={"Retry-After": str(until_seconds)},
    )


def login(
    session: Session,
    *,
    email: str,
    password: str,
    settings: Settings,
    request_id: str | None,
    source_ip: str | None,
) -> tuple[User | None, Unauthorized | None]:
    """Check a user's email and password, counting and auditing the attempt in ``session``.

    Failures are counted per ``(email, source_ip)`` (:func:`lock_seconds` gives the schedule);
    while a pair is locked its password is not even checked and the refusal says when to try
    again (``Retry-After``). An unknown email, a wrong password and a disabled user get the same
    answer, equally slow. A user's failure writes ``user.login_failed`` (and ``user.locked``
    when it locks: then the user is signed out everywhere, :func:`sign_out_everywhere`, as the
    password may be under attack); a success resets the pair, sets ``last_login_at`` and writes
    ``user.logged_in``. While ``settings.password_login`` is ``super-admins`` the right
    password of anyone but a Super Admin is refused (not counted: the person should sign in by
    SSO, docs/sso.md "Break glass"), audited as ``user.login_failed`` with reason ``sso only``.

    Returns:
        ``(user, None)`` on success, ``(None, refusal)`` otherwise. The caller commits the
        session before raising the refusal, so that the failure is kept.
    """
    now = utcnow()
    source = (source_ip or UNKNOWN_SOURCE)[:64]
    key = email_key(email)
    counter = session.scalars(
        select(LoginFailures).where(LoginFailures.email_key == key, LoginFailures.source == source)
    ).first()
    user = find_user(session, email=email)
    actor = (
        user_actor(user).with_request(request_id=request_id, source_ip=source_ip) if user else None
    )
    if counter is not None and counter.locked_until is not None and counter.locked_until > now:
        wait = max(1, int((counter.locked_until - now).total_seconds() + 0.999))
        if user is not None and actor is not None:
            _audit_failure(
                session, actor=actor, user=user, reason="locked", failures=counter.failures
            )
        return None, _refusal(wait)
    ok = verify_secret(user.password_hash if user else None, password)
    sso_only = settings.password_login == "super-admins"
    if ok and user is not None and actor is not None and user.disabled_at is None:
        if sso_only and user.role != "SUPER_ADMIN":
            _audit_failure(session, actor=actor, user=user, reason="sso only", failures=0)
            return None, Unauthorized(SSO_ONLY.format(provider=settings.oidc_display_name))
        if counter is not None:
            session.delete(counter)
        user.last_login_at = now
        audit.record(
            session,
            actor=actor,
            action="user.logged_in",
            target_type="user",
            target_id=user.id,
        )
        return user, None
    if ok and user is not None and actor is not None:
        # A disabled user's right password is not counted, and answered like a wrong one.
        _audit_failure(session, actor=actor, user=user, reason="disabled", failures=0)
        return None, _refusal(None)
    if counter is None:
        counter = LoginFailures(email_key=key, source=source, failures=0)
        session.add(counter)
    counter.failures += 1
    wait = lock_seconds(counter.failures, settings)
    counter.locked_until = now + timedelta(seconds=wait) if wait else None
    session.flush()
    if user is not None and actor is not None:
        _audit_failure(
            session, actor=actor, user=user, reason="wrong password", failures=counter.failures
        )
        if counter.locked_until is not None:
            sign_out_everywhere(session, user=user)
            audit.record(
                session,
                actor=actor,
                action="user.locked",
                target_type="user",
                target_id=user.id,
                details={"until": format_timestamp(counter.locked_until), "source": source},
            )
    return None, _refusal(wait or None)


def _audit_failure(
    session: Session, *, actor: Actor, user: User, reason: str, failures: int
) -> None:
    audit.record(
        session,
        actor=actor,
        action="user.login_failed",
        target_type="user",
        target_id=user.id,
        details={"reason": reason, "failedLogins": failures},
    )


# --- administration ----------------------------------------------------------------------------


def list_users(
    session: Session, *, actor: Actor, params: PageParams, q: str | None = None
) -> tuple[int, list[User]]:
    """One page of the account's users, oldest first (disabled ones included); with ``q``,
    only those whose email starts with it (case-insensitive)."""
    query = select(User).where(User.account_id == actor.account_id)
    if q:
        escaped = email_key(q).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(User.email_key.like(f"{escaped}%", escape="\\"))
    return paginate(session, query.order_by(User.created_at, User.id), params)


def get_user(session: Session, *, actor: Actor, user_id: str) -> User:
    """The account's user ``user_id``.

    Raises:
        NotFound: no such user in the account.
    """
    user = session.get(User, user_id)
    if user is None or user.account_id != actor.account_id:
        raise NotFound(f"User {user_id} not found")
    return user


def me(session: Session, *, actor: Actor) -> User:
    """The calling user.

    Raises:
        NotFound: the caller is an API client (clients are read at ``/v1/api-clients``).
    """
    if actor.type != "user":
        raise NotFound("The caller is an API client, not a user")
    return get_user(session, actor=actor, user_id=actor.id)


def _may_manage(actor: Actor, user: User, role: str | None = None) -> None:
    """Only a Super Admin may change a ``SUPER_ADMIN`` user or make one: an Admin who could
    would become as powerful."""
    if "SUPER_ADMIN" in (user.role, role) and not account_allows(actor.role, "user.super_admin"):
        raise PermissionDenied(
            "Only a Super Admin may manage SUPER_ADMIN users", permission="user.super_admin"
        )


def update_user(
    session: Session, *, actor: Actor, user: User, disabled: bool | None, role: str | None
) -> User:
    """Disable or enable ``user`` and/or change their account role. Disabling or a new role
    signs the user out everywhere (:func:`sign_out_everywhere`).

    Raises:
        PermissionDenied: an Admin changing a Super Admin or making one.
        Conflict: the caller disables themselves or changes their own role (another admin
            must: the account keeps someone who can undo it).
    """
    _may_manage(actor, user, role)
    if user.id == actor.id and (disabled or (role is not None and role != user.role)):
        raise Conflict(
            "You may not disable yourself or change your own role",
            violations=["userId: is the caller"],
        )
    if role is not None and role != user.role:
        change_role(session, actor=actor, user=user, role=role)
    if disabled is not None and disabled != (user.disabled_at is not None):
        user.disabled_at = utcnow() if disabled else None
        if disabled:
            sign_out_everywhere(session, user=user)
        audit.record(
            session,
            actor=actor,
            action="user.disabled" if disabled else "user.enabled",
            target_type="user",
            target_id=user.id,
            details={"email": user.email},
        )
    session.flush()
    return user


def change_role(
    session: Session, *, actor: Actor, user: User, role: str, via: str | None = None
) -> None:
    """Give ``user`` the account role ``role`` (not their current one): sign them out everywhere
    (:func:`sign_out_everywhere`) and audit ``user.role_changed`` with the old and new role
    (and ``via``, e.g. ``"groups"``, when given). Who may change it is the caller's to check."""
    previous, user.role = user.role, role
    sign_out_everywhere(session, user=user)
    details = {"email": user.email, "from": previous, "to": role}
    if via is not None:
        details["via"] = via
    audit.record(
        session,
        actor=actor,
        action="user.role_changed",
        target_type="user",
        target_id=user.id,
        details=details,
    )


def sign_out_everywhere(session: Session, *, user: User, keep_session: str | None = None) -> None:
    """End everything ``user`` is signed in with: every access token issued so far
    (``token_version`` + 1), every CLI grant (their refresh tokens stop working) and every
    console session but ``keep_session`` (the table key of the session that asked, when it
    stays). The user can log in again.

    The caller audits the reason (a new role, disabling, a lock, a password reset ...).
    """
    user.token_version += 1
    revoke_user_grants(session, user_id=user.id)
    end_user_sessions(session, user_id=user.id, keep=keep_session)
    session.flush()


def revoke_tokens(session: Session, *, actor: Actor, user: User) -> None:
    """Sign ``user`` out everywhere (:func:`sign_out_everywhere`): every token issued so far
    stops working and every console session ends; the user can log in again.

    Raises:
        PermissionDenied: an Admin signing out a Super Admin.
    """
    _may_manage(actor, user)
    sign_out_everywhere(session, user=user)
    audit.record(
        session,
        actor=actor,
        action="user.tokens_revoked",
        target_type="user",
        target_id=user.id,
        details={"email": user.email},
    )


def locked_user_ids(session: Session, *, users: list[User]) -> set[str]:
    """The ids of those of ``users`` who are locked out now, from at least one address."""
    keys = {user.email_key: user.id for user in users}
    locked = session.scalars(
        select(LoginFailures.email_key).where(
            LoginFailures.email_key.in_(list(keys)), LoginFailures.locked_until > utcnow()
        )
    )
    return {keys[key] for key in locked}


def external_ids(session: Session, *, users: list[User]) -> tuple[set[str], set[str]]:
    """The ids of those of ``users`` the identity provider wrote by SCIM, and of those linked to
    a single sign-on account: ``(scim, sso)``."""
    ids = [user.id for user in users]
    scim = set(session.scalars(select(ScimUser.user_id).where(ScimUser.user_id.in_(ids))))
    sso = set(session.scalars(select(SsoIdentity.user_id).where(SsoIdentity.user_id.in_(ids))))
    return scim, sso


def unlock(session: Session, *, actor: Actor, user: User) -> User:
    """Clear ``user``'s login lockouts and failure counts from every address, so that they can
    log in again at once. Audited (``user.unlocked``) even when nothing was locked.

    Raises:
        PermissionDenied: an Admin unlocking a Super Admin.
    """
    _may_manage(actor, user)
    cleared = session.execute(
        delete(LoginFailures).where(LoginFailures.email_key == user.email_key)
    ).rowcount  # type: ignore[attr-defined]
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="user.unlocked",
        target_type="user",
        target_id=user.id,
        details={"email": user.email, "addresses": cleared},
    )
    return user


def start_password_reset(
    session: Session, *, actor: Actor, user: User, settings: Settings
) -> tuple[PasswordReset, str, bool]:
    """Make a one-time link for ``user`` to set a new password, and sign them out everywhere.

    The link is ``<public URL>/console/reset/<token>`` with a 256-bit random token of which only
    the SHA-256 is stored; it works once, for ``settings.password_reset_ttl_seconds``. Any
    earlier link of the user stops working. The link is mailed to the user when a mail server is
    configured, and returned for the admin to pass on either way (shown once). Until the link is
    used the old password keeps working: the reset ends sessions, not the password.

    Returns:
        ``(reset, url, mail_sent)``.

    Raises:
        PermissionDenied: an Admin resetting a Super Admin.
        Conflict: the user is disabled (enable them first), or the caller resets themselves
            (they change their own password on their account page).
        UpstreamError, UpstreamTimeout: the mail server failed (nothing is stored).
    """
    _may_manage(actor, user)
    if user.id == actor.id:
        raise Conflict(
            "You may not reset your own password; change it on your account page",
            violations=["userId: is the caller"],
        )
    if user.disabled_at is not None:
        raise Conflict(
            f"User {user.email} is disabled; enable them before resetting their password",
            violations=["userId: the user is disabled"],
        )
    session.execute(delete(PasswordReset).where(PasswordReset.user_id == user.id))
    token = secrets.token_urlsafe(32)
    reset = PasswordReset(
        user_id=user.id,
        token_hash=token_hash(token),
        expires_at=utcnow() + timedelta(seconds=settings.password_reset_ttl_seconds),
    )
    session.add(reset)
    sign_out_everywhere(session, user=user)
    mail_sent = bool(settings.smtp_host)
    audit.record(
        session,
        actor=actor,
        action="user.password_reset_started",
        target_type="user",
        target_id=user.id,
        details={
            "email": user.email,
            "expiresAt": format_timestamp(reset.expires_at),
            "mailSent": mail_sent,
        },
    )
    url = f"{settings.public_url.rstrip('/')}/console/reset/{token}"
    if mail_sent:
        mail.send_password_reset(
            settings,
            to=user.email,
            admin=actor.name,
            reset_url=url,
            expires=format_timestamp(reset.expires_at),
        )
    return reset, url, mail_sent


def open_password_reset(session: Session, *, token: str) -> tuple[PasswordReset, User]:
    """The password reset ``token`` opens and its user, if it can still be used now.

    Raises:
        NotFound: no reset has this token (a newer link replaced it, or it never existed).
        Conflict: it was used already, has expired, or its user is disabled.
    """
    row = session.execute(
        select(PasswordReset, User)
        .join(User, User.id == PasswordReset.user_id)
        .where(PasswordReset.token_hash == token_hash(token))
    ).first()
    if row is None:
        raise NotFound("No password reset has this link; ask your administrator for a new one")
    reset, user = row
    if reset.used_at is not None:
        raise Conflict("This password reset link has been used already")
    if reset.expires_at <= utcnow():
        raise Conflict(
            f"This password reset link expired at {format_timestamp(reset.expires_at)}; "
            "ask your administrator for a new one"
        )
    if user.disabled_at is not None:
        raise Conflict("This user is disabled")
    return reset, user


def reset_password(
    session: Session,
    *,
    token: str,
    password: str,
    request_id: str | None,
    source_ip: str | None,
) -> User:
    """Use a password reset link: set the user's new ``password`` (stored as an argon2id
    hash), mark the link used, clear the user's lockouts and sign them out everywhere.
    Audited as ``user.password_reset`` by the user.

    Raises:
        NotFound, Conflict: as :func:`open_password_reset` (nothing changes).
    """
    reset, user = open_password_reset(session, token=token)
    user.password_hash = hash_secret(password)
    reset.used_at = utcnow()
    session.execute(delete(LoginFailures).where(LoginFailures.email_key == user.email_key))
    sign_out_everywhere(session, user=user)
    audit.record(
        session,
        actor=user_actor(user).with_request(request_id=request_id, source_ip=source_ip),
        action="user.password_reset",
        target_type="user",
        target_id=user.id,
        details={"email": user.email},
    )
    return user


def change_password(
    session: Session,
    *,
    actor: Actor,
    user: User,
    current: str,
    new: str,
    keep_session: str | None = None,
) -> None:
    """Change ``user``'s own password: they are signed out everywhere
    (:func:`sign_out_everywhere`) except ``keep_session`` (the table key of the session that
    made the change). Audited as ``user.password_changed``.

    Raises:
        BadRequest: ``currentPassword`` is not the user's password, or ``newPassword`` is the
            same as it.
    """
    if not verify_secret(user.password_hash, current):
        raise BadRequest(
            "The current password is not correct",
            violations=["currentPassword: is not correct"],
        )
    if new == current:
        raise BadRequest(
            "The new password is the current one",
            violations=["newPassword: must differ from the current password"],
        )
    user.password_hash = hash_secret(new)
    sign_out_everywhere(session, user=user, keep_session=keep_session)
    audit.record(
        session,
        actor=actor,
        action="user.password_changed",
        target_type="user",
        target_id=user.id,
        details={"email": user.email},
    )
