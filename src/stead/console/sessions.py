"""Console sessions, kept in the database so that they can be ended (docs/console.md, Sessions).

The browser holds a 256-bit random id (``secrets.token_urlsafe(32)``) in the session cookie; the
table keeps only its SHA-256, so a copy of the database lets nobody act as a user. A session
ends after :data:`IDLE_TIMEOUT` without a request, or :data:`ABSOLUTE_TIMEOUT` after login,
whichever comes first (OWASP Session Management Cheat Sheet, "Session Expiration").

The CSRF token of a session is an HMAC-SHA256 under the server's signing key of a random value
stored with the session (OWASP CSRF Prevention Cheat Sheet, "Synchronizer Token Pattern"): the
table alone yields no token, and the token is not the session id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from stead.db import Base, UTCDateTime, utcnow
from stead.identity.models import User

#: A session unused this long has ended.
IDLE_TIMEOUT = timedelta(hours=8)
#: A session this old has ended, however busy.
ABSOLUTE_TIMEOUT = timedelta(days=7)
#: ``last_seen_at`` is written at most this often (a page view is not a write).
TOUCH_INTERVAL = timedelta(minutes=1)


class ConsoleSession(Base):
    """A logged-in browser.

    ``id_hash`` is the hex SHA-256 of the cookie's id; ``csrf_seed`` the random value the CSRF
    token is derived from (:func:`csrf_token`); ``user_agent`` and ``address`` describe the
    browser on the account page (the first 200 characters of ``User-Agent``, the client
    address); ``flash`` a message for the next page the browser shows.
    """

    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_seed: Mapped[str] = mapped_column(String(64))
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    user_agent: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(64))
    flash: Mapped[str | None] = mapped_column(String(500), default=None)

    def ends_at(self) -> datetime:
        """When the session ends if it is not used again (idle or absolute expiry)."""
        return min(self.last_seen_at + IDLE_TIMEOUT, self.expires_at)


@dataclass(frozen=True)
class Started:
    """A new session: ``cookie_value`` goes to the browser (and nowhere else), ``record`` is the
    row."""

    cookie_value: str
    record: ConsoleSession


def hash_id(cookie_value: str) -> str:
    """The table key of a session cookie's value: hex SHA-256."""
    return hashlib.sha256(cookie_value.encode()).hexdigest()


def csrf_token(record: ConsoleSession, key: bytes) -> str:
    """The session's CSRF token: URL-safe base64 of HMAC-SHA256(``key``, ``csrf_seed``).

    ``key`` is the server's signing key (``app.state.signing_key``).
    """
    mac = hmac.new(key, record.csrf_seed.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def start_session(session: Session, *, user: User, user_agent: str, address: str | None) -> Started:
    """Start a session for ``user`` (a fresh id, never one the browser brought along)."""
    now = utcnow()
    value = secrets.token_urlsafe(32)
    record = ConsoleSession(
        id_hash=hash_id(value),
        user_id=user.id,
        csrf_seed=secrets.token_urlsafe(32),
        last_seen_at=now,
        expires_at=now + ABSOLUTE_TIMEOUT,
        user_agent=user_agent[:200],
        address=(address or "unknown")[:64],
    )
    session.add(record)
    session.flush()
    return Started(cookie_value=value, record=record)


def find_session(session: Session, *, id_hash: str) -> tuple[ConsoleSession, User] | None:
    """The session keyed ``id_hash`` and its user, as stored (ended or not), or None."""
    row = session.execute(
        select(ConsoleSession, User)
        .join(User, User.id == ConsoleSession.user_id)
        .where(ConsoleSession.id_hash == id_hash)
    ).first()
    if row is None:
        return None
    record, user = row
    return record, user


def is_live(record: ConsoleSession, user: User) -> bool:
    """True while the session has not expired and its user is not disabled."""
    return record.ends_at() > utcnow() and user.disabled_at is None


def needs_write(record: ConsoleSession, user: User) -> bool:
    """Whether :func:`load_session` would write: the session has ended, ``last_seen_at`` is
    due (:data:`TOUCH_INTERVAL`), or a flash message waits."""
    due = utcnow() - record.last_seen_at >= TOUCH_INTERVAL
    return not is_live(record, user) or due or record.flash is not None


def load_session(session: Session, *, cookie_value: str) -> tuple[ConsoleSession, User] | None:
    """The live session of a cookie value and its user, or None (unknown, expired, or its user
    disabled). An ended session is deleted; ``last_seen_at`` is moved on at most once per
    :data:`TOUCH_INTERVAL`. ``session`` must be able to write; the caller commits."""
    found = find_session(session, id_hash=hash_id(cookie_value))
    if found is None:
        return None
    record, user = found
    if not is_live(record, user):
        session.delete(record)
        session.flush()
        return None
    now = utcnow()
    if now - record.last_seen_at >= TOUCH_INTERVAL:
        record.last_seen_at = now
        session.flush()
    return record, user


def end_session(session: Session, *, id_hash: str, user_id: str | None = None) -> None:
    """End one session (logging out); with ``user_id``, only if it is that user's. Nothing
    happens when it has already ended."""
    query = delete(ConsoleSession).where(ConsoleSession.id_hash == id_hash)
    if user_id is not None:
        query = query.where(ConsoleSession.user_id == user_id)
    session.execute(query)


def end_user_sessions(session: Session, *, user_id: str, keep: str | None = None) -> int:
    """End every session of ``user_id`` except the one keyed ``keep``; return how many ended.

    Called on a password change, a role change, disabling and locking a user.
    """
    query = delete(ConsoleSession).where(ConsoleSession.user_id == user_id)
    if keep is not None:
        query = query.where(ConsoleSession.id_hash != keep)
    return session.execute(query).rowcount  # type: ignore[attr-defined,no-any-return]


def list_user_sessions(session: Session, *, user_id: str) -> list[ConsoleSession]:
    """The user's live sessions, the most recently used first."""
    now = utcnow()
    rows = session.scalars(
        select(ConsoleSession)
        .where(
            ConsoleSession.user_id == user_id,
            ConsoleSession.expires_at > now,
            ConsoleSession.last_seen_at > now - IDLE_TIMEOUT,
        )
        .order_by(ConsoleSession.last_seen_at.desc(), ConsoleSession.id_hash)
    )
    return list(rows)


def set_flash(session: Session, *, id_hash: str, message: str) -> None:
    """Leave ``message`` (at most 500 characters, no secret) for the session's next page."""
    session.execute(
        update(ConsoleSession).where(ConsoleSession.id_hash == id_hash).values(flash=message[:500])
    )
