"""Identity rules: API clients, access tokens, the acting principal, and visibility.

Tokens are HS256 JWTs (RFC 7519) signed with the installation's signing key; client secrets are
stored as argon2id hashes only.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from stead.errors import BadRequest, Unauthorized
from stead.identity.models import Account, ApiClient, ProjectMember
from stead.identity.permissions import ACCOUNT_ROLES

_hasher = PasswordHasher()
# Verifying against a dummy hash when the client id is unknown keeps both answers equally slow.
_DUMMY_HASH = _hasher.hash("stead-dummy-secret")

TOKEN_ISSUER = "stead"


@dataclass(frozen=True)
class Actor:
    """The authenticated principal of a request.

    Attributes:
        type: ``api_client`` (users arrive with the people-and-access work).
        id: the principal's primary key (UUID string).
        name: display name, kept in audit events.
        role: account role, one of ``ACCOUNT_ROLES``.
        account_id: the account the principal belongs to.
    """

    type: str
    id: str
    name: str
    role: str
    account_id: str

    @property
    def is_super_admin(self) -> bool:
        """True for ``SUPER_ADMIN``, who sees and owns every project (contract section 8)."""
        return self.role == "SUPER_ADMIN"


def get_account(session: Session) -> Account:
    """Return the installation's account (created by the first migration)."""
    account = session.scalars(select(Account).order_by(Account.created_at)).first()
    if account is None:
        raise RuntimeError("no account: run `stead db upgrade`")
    return account


def hash_secret(value: str) -> str:
    """argon2id hash of a secret (client secrets, agent secrets)."""
    return _hasher.hash(value)


def verify_secret(hashed: str | None, value: str) -> bool:
    """True if ``value`` matches ``hashed``; constant-ish time even for a missing hash."""
    try:
        return _hasher.verify(hashed or _DUMMY_HASH, value) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


def create_api_client(session: Session, *, name: str, role: str) -> tuple[ApiClient, str]:
    """Create an API client with a fresh secret.

    Returns:
        ``(client, secret)``: the secret in clear, to be shown once; only its hash is stored.

    Raises:
        BadRequest: unknown role or empty name.
    """
    if role not in ACCOUNT_ROLES:
        raise BadRequest(
            f"role must be one of {', '.join(ACCOUNT_ROLES)}",
            violations=[f"role: must be one of {', '.join(ACCOUNT_ROLES)}"],
        )
    if not name.strip():
        raise BadRequest("name must not be empty", violations=["name: must not be empty"])
    secret = secrets.token_urlsafe(32)
    client = ApiClient(
        account_id=get_account(session).id,
        name=name,
        client_id=str(uuid.uuid4()),
        secret_hash=hash_secret(secret),
        role=role,
    )
    session.add(client)
    session.flush()
    return client, secret


def authenticate_client(
    session: Session, *, client_id: str, client_secret: str
) -> ApiClient | None:
    """Return the active API client whose id and secret match, else None."""
    client = session.scalars(select(ApiClient).where(ApiClient.client_id == client_id)).first()
    ok = verify_secret(client.secret_hash if client else None, client_secret)
    if client is None or not ok or client.revoked_at is not None:
        return None
    return client


def issue_token(client: ApiClient, *, key: bytes, ttl_seconds: int) -> str:
    """A signed access token for ``client`` valid ``ttl_seconds`` seconds (contract section 1)."""
    now = int(time.time())
    claims = {
        "iss": TOKEN_ISSUER,
        "sub": client.id,
        "client_id": client.client_id,
        "typ": "api_client",
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, key, algorithm="HS256")


def actor_from_token(session: Session, *, token: str, key: bytes) -> Actor:
    """Verify a bearer token and return its actor.

    Raises:
        Unauthorized: bad signature, expired, malformed, or the client was revoked or deleted.
    """
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            issuer=TOKEN_ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The access token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("The access token is invalid") from exc
    client = session.get(ApiClient, claims["sub"])
    if client is None or client.revoked_at is not None:
        raise Unauthorized("The access token's client no longer exists")
    return Actor(
        type="api_client",
        id=client.id,
        name=client.name,
        role=client.role,
        account_id=client.account_id,
    )


def project_role(session: Session, *, actor: Actor, project_id: str) -> str | None:
    """The actor's role in a project: ``OWNER`` for Super Admins, the membership role, or None."""
    if actor.is_super_admin:
        return "OWNER"
    return session.scalar(
        select(ProjectMember.role).where(
            ProjectMember.project_id == project_id,
            ProjectMember.principal_type == actor.type,
            ProjectMember.principal_id == actor.id,
        )
    )


def add_member(session: Session, *, project_id: str, actor: Actor, role: str) -> None:
    """Make ``actor`` a member of the project with ``role``."""
    session.add(
        ProjectMember(
            project_id=project_id, principal_type=actor.type, principal_id=actor.id, role=role
        )
    )
