"""Tables: the account, its API clients and users, project memberships, invitations,
per-user environment access, and the grants of people on the command line."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stead.db import Base, UTCDateTime, UUIDStr, new_uuid, utcnow


class Account(Base):
    """The installation's account (one per installation for now).

    ``project_count`` is kept equal to the number of its projects by the project service (in the
    transaction that creates or deletes one), so a list's ``total`` costs no ``COUNT(*)``.
    ``project_seq`` is the ``seq`` of the account's latest project (0 before the first): the
    service adds one to it for each project it creates.
    """

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255))
    project_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    project_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ApiClient(Base):
    """An API client: ``client_id`` plus a secret stored only as an argon2id hash.

    ``token_version`` is written into every token issued to the client; rotating the secret
    adds one, so every token issued before stops working at once.
    """

    __tablename__ = "api_clients"

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ProjectMember(Base):
    """A principal's role in a project (``OWNER``, ``CONTRIBUTOR``, ``VIEWER``).

    ``principal_type`` is ``user`` or ``api_client``; ``principal_id`` the user's or client's id.
    """

    __tablename__ = "project_members"
    __table_args__ = (UniqueConstraint("project_id", "principal_type", "principal_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    principal_type: Mapped[str] = mapped_column(String(20))
    principal_id: Mapped[str] = mapped_column(UUIDStr, index=True)
    role: Mapped[str] = mapped_column(String(20))


class User(Base):
    """A person who logs in with email and password (stored only as an argon2id hash).

    ``email_key`` (the case-folded email) is unique: emails compare case-insensitively.
    ``token_version`` is written into every token issued to the user; disabling the user,
    changing their role or revoking their tokens adds one, so every earlier token stops working.
    A user with ``disabled_at`` set cannot log in and their tokens are refused.
    ``last_login_at`` is the time of the user's latest successful login (None before the first).
    """

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(255))
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class LoginFailures(Base):
    """Consecutive failed logins for one email from one source address.

    Kept per ``(email_key, source)`` whether or not a user has the email, so that the answer
    never tells which emails exist, and so that failures from one address never lock the user
    out from another. ``locked_until`` refuses logins of that pair until then.
    """

    __tablename__ = "login_failures"
    __table_args__ = (UniqueConstraint("email_key", "source"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    email_key: Mapped[str] = mapped_column(String(320))
    source: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class Invitation(Base):
    """An invitation of an email address into a project with a project role.

    Only the SHA-256 of the invitation token is stored. It is single-use (``accepted_at``) and
    expires at ``expires_at``.
    """

    __tablename__ = "invitations"
    __table_args__ = (Index("ix_invitations_project_created", "project_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320))
    project_role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class PasswordReset(Base):
    """A one-time link an account Admin made for a user to set a new password.

    Only the SHA-256 of its token is stored. It can be used once (``used_at``) before
    ``expires_at``; making a new one for the user deletes the user's earlier ones.
    """

    __tablename__ = "password_resets"

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class SsoRequest(Base):
    """A single sign-on login under way: made when the browser is sent to the identity provider,
    deleted when it comes back (used once) or at the next start after ``expires_at``.

    ``state_hash`` is the SHA-256 of the OAuth ``state`` sent with the browser; ``browser_hash``
    the SHA-256 of the value of the browser's ``stead_sso`` cookie, which is also the PKCE code
    verifier (RFC 7636): only that browser can finish the login, and the verifier is never
    stored. ``nonce`` is the OpenID Connect nonce the ID token must carry (not a secret: it
    travels in the URL). ``next_url`` is the console path to go to afterwards; ``address`` the
    client address that started it (a cap on logins under way per address).
    """

    __tablename__ = "sso_requests"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    browser_hash: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(128))
    next_url: Mapped[str] = mapped_column(String(2048))
    address: Mapped[str] = mapped_column(String(64), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class SsoIdentity(Base):
    """The identity provider's account (``issuer``, ``subject``: the ID token's ``iss`` and
    ``sub``) a user signs in with; made when the user first signs in by SSO (linked by verified
    email, or created then)."""

    __tablename__ = "sso_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    issuer: Mapped[str] = mapped_column(String(1024))
    subject: Mapped[str] = mapped_column(String(255))
    last_login_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EnvironmentAccess(Base):
    """A user's own access level to one environment (``admin``, ``runner``, ``readOnly``,
    ``noAccess`` or ``default``), overriding the environment's ``defaultUserAccessLevel``."""

    __tablename__ = "environment_access"
    __table_args__ = (UniqueConstraint("environment_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    access_level: Mapped[str] = mapped_column(String(20))


#: Longest device name a CLI may give (the part after "stead CLI on ").
DEVICE_NAME_MAX = 100


class CliGrant(Base):
    """One signed-in command line of a user (:mod:`stead.identity.grants`).

    ``method`` is ``password`` or ``browser``; ``last_used_at`` the latest issue or refresh of
    its tokens; ``expires_at`` moves on with each refresh (``GRANT_IDLE``, at most
    ``GRANT_LIFETIME`` after ``created_at``); ``revoked_at`` ends it for good.
    """

    __tablename__ = "cli_grants"

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(20))
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    def is_live(self, now: datetime | None = None) -> bool:
        """True while the grant is neither revoked nor expired."""
        return self.revoked_at is None and self.expires_at > (now or utcnow())


class CliRefreshToken(Base):
    """A refresh token issued for a grant: only its SHA-256 (``token_hash``). ``used_at`` is
    set when it was exchanged; presenting it again revokes the grant."""

    __tablename__ = "cli_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(
        ForeignKey("cli_grants.id", ondelete="CASCADE"), index=True
    )
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class CliCode(Base):
    """A one-time authorization code of the browser login: only its SHA-256 (``code_hash``),
    the user who approved it, the PKCE ``challenge``, the ``redirect_uri`` and ``device_name``
    it was issued for, and ``expires_at``. ``grant_id`` is the grant it was exchanged for
    (set on first use; a second use revokes that grant, RFC 6749 section 4.1.2)."""

    __tablename__ = "cli_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    challenge: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(String(255))
    device_name: Mapped[str] = mapped_column(String(DEVICE_NAME_MAX))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    grant_id: Mapped[str | None] = mapped_column(
        ForeignKey("cli_grants.id", ondelete="CASCADE"), default=None
    )
