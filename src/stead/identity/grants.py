"""People on the command line: CLI grants, their refresh tokens, and the one-time codes of the
browser login (docs/cli.md).

A *grant* is one signed-in ``stead`` command line (or SDK script) of one user: its name
("stead CLI on laptop-7"), how it was obtained (``password`` at the token endpoint, or
``browser``: approved on the console's ``/console/cli/authorize`` page), when it was created and
last refreshed, and when it expires. Access tokens stay the short JWTs of
:func:`stead.identity.service.issue_token`, carrying the grant's id in the ``sid`` claim, so a
revoked or expired grant stops them at once (:func:`stead.identity.service.load_actor`).

Refresh tokens (RFC 6749 section 6) are 256-bit random values of which only the SHA-256 is
stored, one row per token issued. Each refresh uses the token up and issues a new one (rotation,
RFC 9700 section 4.14.2); presenting a used one is a replay: the grant is revoked, so a stolen
token works at most until the rightful holder refreshes, and then neither can.

A grant lives :data:`GRANT_IDLE` (30 days) after its last refresh and never longer than
:data:`GRANT_LIFETIME` (90 days) after it was created; then the person logs in again.

The browser login follows RFC 8252 (OAuth 2.0 for native apps): Stead is the authorization
server of its own public client :data:`CLI_CLIENT_ID`, the CLI listens on a loopback address
(section 7.3) and proves possession of its PKCE verifier (RFC 7636, ``S256`` only). The code is
256 bits, stored as its SHA-256, valid :data:`CODE_TTL` (60 s), single use, and bound to the
challenge, the redirect URI and the user who approved it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import Select, delete, select, update
from sqlalchemy.orm import Session

from stead import audit
from stead.db import utcnow
from stead.errors import BadRequest, NotFound
from stead.identity.actor import Actor
from stead.identity.models import DEVICE_NAME_MAX, CliCode, CliGrant, CliRefreshToken, User
from stead.identity.service import token_hash, user_actor
from stead.pagination import PageParams, paginate
from stead.wire import format_timestamp

#: The ``client_id`` of Stead's own command line, a public client (RFC 6749 section 2.1):
#: it has no secret; the password grant issues a refresh token only to it.
CLI_CLIENT_ID = "stead-cli"
#: A grant not refreshed for this long has expired.
GRANT_IDLE = timedelta(days=30)
#: A grant this old has expired, however often it was refreshed.
GRANT_LIFETIME = timedelta(days=90)
#: How long an authorization code of the browser login can be exchanged.
CODE_TTL = timedelta(seconds=60)
#: How long a code's row is kept after it expired (a replay within it revokes its grant).
CODE_KEPT = timedelta(hours=1)

#: What a refresh of a revoked grant is answered, every time.
REVOKED = "this login was revoked; run `stead login` again"
#: What a refresh of an expired grant is answered.
EXPIRED = "this login has expired; run `stead login` again"
#: What a refresh for a disabled (or deleted) user is answered.
DISABLED = "your user is disabled; ask an administrator"
#: What a refresh token presented a second time is answered (its grant is revoked).
REPLAYED = (
    "this login's refresh token was used before, so the login has been revoked "
    "(a copy of it may be in someone else's hands); run `stead login` again"
)

#: RFC 7636 section 4.1: ``code_verifier = 43*128unreserved``.
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
#: An S256 challenge: base64url of a SHA-256 digest, without padding (RFC 7636 section 4.2).
_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class GrantRefused(Exception):
    """A token request this module refuses: answered as RFC 6749 section 5.2 ``invalid_grant``
    with :attr:`description` (which never holds the token or code). :attr:`revoked_user_id`
    is the user whose grant the refusal revoked (a replay), to forget in the actor cache."""

    def __init__(self, description: str, *, revoked_user_id: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.revoked_user_id = revoked_user_id


# --- checks of the browser login's parameters --------------------------------------------------


def check_redirect_uri(value: str) -> str:
    """Return ``value`` if it is a loopback redirect URI of a native app (RFC 8252 section 7.3):
    ``http://127.0.0.1:<port>/<path>`` or ``http://[::1]:<port>/<path>``, with an explicit
    port, no user info, no fragment. ``localhost`` is refused too (section 8.3: it may resolve
    elsewhere).

    Raises:
        BadRequest: naming ``redirect_uri``.
    """
    problem = None
    try:
        parts = urlsplit(value)
        port = parts.port
        address = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        problem = "must be http://127.0.0.1:<port>/... or http://[::1]:<port>/..."
    else:
        if len(value) > 255 or _CONTROL.search(value):
            problem = "must be at most 255 characters without control characters"
        elif (
            parts.scheme != "http"
            or not address.is_loopback
            or str(address)
            not in (
                "127.0.0.1",
                "::1",
            )
        ):
            problem = "must be a loopback address: http://127.0.0.1:<port>/ or http://[::1]:<port>/"
        elif port is None or parts.username is not None or parts.fragment:
            problem = "must give a port and have no user name or fragment"
    if problem is not None:
        raise BadRequest(f"redirect_uri {problem}", violations=[f"redirect_uri: {problem}"])
    return value


def check_challenge(challenge: str, method: str) -> str:
    """Return ``challenge`` if it is a PKCE ``S256`` challenge (RFC 7636 section 4.2; the
    ``plain`` method is refused, as RFC 9700 section 2.1.1 advises).

    Raises:
        BadRequest: naming ``code_challenge_method`` or ``code_challenge``.
    """
    if method != "S256":
        raise BadRequest(
            "code_challenge_method must be S256",
            violations=["code_challenge_method: must be S256"],
        )
    if not _CHALLENGE.fullmatch(challenge):
        raise BadRequest(
            "code_challenge must be the base64url SHA-256 of the code verifier (43 characters)",
            violations=["code_challenge: must be 43 base64url characters"],
        )
    return challenge


def device_name(value: str | None) -> str:
    """The device name a CLI reports, made safe to show: control characters dropped, white
    space trimmed, at most :data:`DEVICE_NAME_MAX` characters; ``unknown device`` when empty."""
    cleaned = _CONTROL.sub("", value or "").strip()[:DEVICE_NAME_MAX]
    return cleaned or "unknown device"


def grant_name(device: str) -> str:
    """The name a grant is listed under: ``stead CLI on <device>``."""
    return f"stead CLI on {device}"


def s256(verifier: str) -> str:
    """The ``S256`` challenge of a PKCE verifier: base64url(SHA-256(verifier)), unpadded
    (RFC 7636 section 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- grants ------------------------------------------------------------------------------------


def _new_refresh_token(session: Session, grant: CliGrant) -> str:
    token = secrets.token_urlsafe(32)
    session.add(CliRefreshToken(token_hash=token_hash(token), grant_id=grant.id))
    return token


def issue_grant(
    session: Session, *, user: User, device: str, method: str, actor: Actor
) -> tuple[CliGrant, str]:
    """Create a grant for ``user`` named after ``device`` (:func:`grant_name`) and its first
    refresh token; audited as ``cli_grant.issued`` by ``actor`` (the user).

    Returns:
        ``(grant, refresh_token)``; the token in clear, for the token response only.
    """
    now = utcnow()
    grant = CliGrant(
        user_id=user.id,
        name=grant_name(device),
        method=method,
        created_at=now,
        last_used_at=now,
        expires_at=now + GRANT_IDLE,
    )
    session.add(grant)
    session.flush()
    refresh_token = _new_refresh_token(session, grant)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="cli_grant.issued",
        target_type="cli_grant",
        target_id=grant.id,
        details={
            "name": grant.name,
            "method": method,
            "expiresAt": format_timestamp(grant.expires_at),
        },
    )
    return grant, refresh_token


def refresh(
    session: Session, *, refresh_token: str, request_id: str | None, source_ip: str | None
) -> tuple[CliGrant, User, str]:
    """Exchange ``refresh_token`` for a new one (rotation) and move the grant's expiry on.

    A disabled user, a revoked or an expired grant is refused with :data:`DISABLED`,
    :data:`REVOKED` or :data:`EXPIRED` every time, the token left unused. A token of a live
    grant used before revokes the grant (``cli_grant.revoked`` with reason ``replay``) and is
    refused with :data:`REPLAYED`; the caller commits the session before answering, so that the
    revocation is kept. A successful refresh is audited as ``cli_grant.refreshed``.

    Returns:
        ``(grant, user, new_refresh_token)``.

    Raises:
        GrantRefused: unknown, used, revoked or expired token or grant; disabled user.
    """
    now = utcnow()
    row = session.execute(
        select(CliRefreshToken, CliGrant)
        .join(CliGrant, CliGrant.id == CliRefreshToken.grant_id)
        .where(CliRefreshToken.token_hash == token_hash(refresh_token))
    ).first()
    if row is None:
        raise GrantRefused("the refresh token is not valid")
    stored, grant = row
    # A dead login is refused the same way every time, its token left as it was: only a
    # rotated token presented again is a replay.
    user = session.get(User, grant.user_id)
    if user is None or user.disabled_at is not None:
        raise GrantRefused(DISABLED)
    if grant.revoked_at is not None:
        raise GrantRefused(REVOKED)
    if not grant.is_live(now):
        raise GrantRefused(EXPIRED)
    # One statement decides which of two concurrent refreshes wins (the other is a replay).
    claimed = session.execute(
        update(CliRefreshToken)
        .where(CliRefreshToken.token_hash == stored.token_hash, CliRefreshToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not claimed:
        actor = user_actor(user).with_request(request_id=request_id, source_ip=source_ip)
        revoke(session, grant=grant, actor=actor, reason="replay")
        raise GrantRefused(REPLAYED, revoked_user_id=grant.user_id)
    grant.last_used_at = now
    grant.expires_at = min(now + GRANT_IDLE, grant.created_at + GRANT_LIFETIME)
    new_token = _new_refresh_token(session, grant)
    session.flush()
    audit.record(
        session,
        actor=user_actor(user).with_request(request_id=request_id, source_ip=source_ip),
        action="cli_grant.refreshed",
        target_type="cli_grant",
        target_id=grant.id,
        details={"name": grant.name, "expiresAt": format_timestamp(grant.expires_at)},
    )
    return grant, user, new_token


def _grant_actor(
    user: User | None, grant: CliGrant, *, request_id: str | None, source_ip: str | None
) -> Actor:
    """The actor of an event the grant's own code caused (a replay): its user."""
    assert user is not None  # the grant's row cascades with its user
    return user_actor(user).with_request(request_id=request_id, source_ip=source_ip)


def revoke(session: Session, *, grant: CliGrant, actor: Actor, reason: str) -> None:
    """Revoke ``grant``: its refresh tokens and access tokens stop working (in this process
    once the caller commits and forgets the user in its actor cache). Audited as
    ``cli_grant.revoked`` with ``reason`` (``logout``, ``console``, ``replay``, ``code
    replay``). Revoking a revoked grant changes nothing."""
    if grant.revoked_at is not None:
        return
    grant.revoked_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="cli_grant.revoked",
        target_type="cli_grant",
        target_id=grant.id,
        details={"name": grant.name, "reason": reason},
    )


def revoke_user_grants(session: Session, *, user_id: str) -> int:
    """Revoke every live grant of ``user_id`` (signing the user out everywhere); return how
    many. The caller audits the reason."""
    return session.execute(  # type: ignore[attr-defined,no-any-return]
        update(CliGrant)
        .where(CliGrant.user_id == user_id, CliGrant.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session="fetch")
    ).rowcount


def _live_grants(user_id: str) -> Select[CliGrant]:
    return (
        select(CliGrant)
        .where(
            CliGrant.user_id == user_id,
            CliGrant.revoked_at.is_(None),
            CliGrant.expires_at > utcnow(),
        )
        .order_by(CliGrant.last_used_at.desc(), CliGrant.id)
    )


def list_grants(session: Session, *, user_id: str) -> list[CliGrant]:
    """The user's live grants, the most recently used first."""
    return list(session.scalars(_live_grants(user_id)))


def page_of_grants(
    session: Session, *, user_id: str, params: PageParams
) -> tuple[int, list[CliGrant]]:
    """One page of :func:`list_grants`: ``(total, rows)``."""
    return paginate(session, _live_grants(user_id), params)


def get_own_grant(session: Session, *, actor: Actor, grant_id: str) -> CliGrant:
    """The caller's grant ``grant_id`` (revoked or expired ones included).

    Raises:
        NotFound: no such grant of the caller (another user's is not found either).
    """
    grant = session.get(CliGrant, grant_id)
    if grant is None or grant.user_id != actor.id or actor.type != "user":
        raise NotFound(f"Grant {grant_id} not found")
    return grant


def grant_is_live(session: Session, *, grant_id: str, user_id: str) -> bool:
    """True when ``grant_id`` is a live grant of ``user_id`` (an access token's ``sid``)."""
    grant = session.get(CliGrant, grant_id)
    return grant is not None and grant.user_id == user_id and grant.is_live()


# --- the browser login -------------------------------------------------------------------------


def start_code(
    session: Session,
    *,
    actor: Actor,
    redirect_uri: str,
    challenge: str,
    device: str,
) -> str:
    """Issue a one-time code for the user ``actor`` who approved the CLI on ``device``; audited
    as ``cli_grant.approved``. The caller checked ``redirect_uri`` and ``challenge``
    (:func:`check_redirect_uri`, :func:`check_challenge`).

    Returns:
        The code in clear, for the redirect to the CLI only.
    """
    now = utcnow()
    # Codes long expired have nothing left to guard (a replay this late is refused as unknown).
    session.execute(delete(CliCode).where(CliCode.expires_at < now - CODE_KEPT))
    code = secrets.token_urlsafe(32)
    session.add(
        CliCode(
            code_hash=token_hash(code),
            user_id=actor.id,
            challenge=challenge,
            redirect_uri=redirect_uri,
            device_name=device,
            expires_at=now + CODE_TTL,
        )
    )
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="cli_grant.approved",
        target_type="user",
        target_id=actor.id,
        details={"name": grant_name(device)},
    )
    return code


def deny(session: Session, *, actor: Actor, device: str) -> None:
    """Audit that the user ``actor`` refused the CLI on ``device`` (``cli_grant.denied``)."""
    audit.record(
        session,
        actor=actor,
        action="cli_grant.denied",
        target_type="user",
        target_id=actor.id,
        details={"name": grant_name(device)},
    )


def exchange_code(
    session: Session,
    *,
    code: str,
    verifier: str,
    redirect_uri: str,
    request_id: str | None,
    source_ip: str | None,
) -> tuple[CliGrant, User, str]:
    """Exchange a browser login's code for a new grant (RFC 6749 section 4.1.3, RFC 7636
    section 4.6): the code must be unused, unexpired, issued for ``redirect_uri``, and
    ``verifier`` must hash to its challenge. A code used before revokes the grant it gave (RFC
    6749 section 4.1.2); the caller commits before answering so that this is kept.

    Returns:
        ``(grant, user, refresh_token)``.

    Raises:
        GrantRefused: any of the above does not hold (the description says which, never the
            code).
    """
    now = utcnow()
    stored = session.get(CliCode, token_hash(code))
    if stored is None:
        raise GrantRefused("the authorization code is not valid")
    if stored.grant_id is not None:
        grant = session.get(CliGrant, stored.grant_id)
        if grant is not None:
            actor = _grant_actor(
                session.get(User, grant.user_id), grant, request_id=request_id, source_ip=source_ip
            )
            revoke(session, grant=grant, actor=actor, reason="code replay")
        raise GrantRefused(
            "the authorization code was used before; its grant has been revoked",
            revoked_user_id=stored.user_id,
        )
    if stored.expires_at <= now:
        raise GrantRefused("the authorization code has expired; log in again")
    if stored.redirect_uri != redirect_uri:
        raise GrantRefused("redirect_uri differs from the authorization request's")
    if not _VERIFIER.fullmatch(verifier) or not hmac.compare_digest(
        s256(verifier), stored.challenge
    ):
        raise GrantRefused("the code_verifier does not match the code_challenge")
    user = session.get(User, stored.user_id)
    if user is None or user.disabled_at is not None:
        raise GrantRefused("the user no longer exists or is disabled")
    actor = user_actor(user).with_request(request_id=request_id, source_ip=source_ip)
    grant, refresh_token = issue_grant(
        session, user=user, device=stored.device_name, method="browser", actor=actor
    )
    # Claimed in one statement: of two concurrent exchanges only one gets a grant.
    claimed = session.execute(
        update(CliCode)
        .where(CliCode.code_hash == stored.code_hash, CliCode.grant_id.is_(None))
        .values(grant_id=grant.id)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not claimed:
        grant.revoked_at = utcnow()
        raise GrantRefused("the authorization code was used before")
    return grant, user, refresh_token
