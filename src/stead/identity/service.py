"""Identity rules: API clients, users and logins, access tokens, the acting principal, roles.

Tokens are HS256 JWTs (RFC 7519) signed with the installation's signing key; client secrets and
passwords are stored as argon2id hashes only.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field, replace

import jwt
from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from stead import audit
from stead.db import utcnow
from stead.errors import BadRequest, Conflict, NotFound, Unauthorized
from stead.identity.actor import Actor
from stead.identity.models import (
    Account,
    ApiClient,
    CliGrant,
    EnvironmentAccess,
    ProjectMember,
    User,
)
from stead.identity.permissions import (
    ACCOUNT_ROLES,
    PermissionDenied,
    account_allows,
    environment_level,
)
from stead.pagination import PageParams, paginate
from stead.wire import name_key

#: argon2id cost of every stored secret hash: RFC 9106 section 4's second recommended option
#: (t=3 passes, m=64 MiB, p=4 lanes, 16-byte salt, 32-byte tag), argon2-cffi's
#: ``profiles.RFC_9106_LOW_MEMORY``; above OWASP's Password Storage Cheat Sheet minimum for
#: argon2id (m=19 MiB, t=2, p=1). A hash records its own parameters, so verifying never depends
#: on this value.
HASH_PARAMETERS = profiles.RFC_9106_LOW_MEMORY
_hasher = PasswordHasher.from_parameters(HASH_PARAMETERS)


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash to verify against when the client id is unknown, which keeps both answers equally
    slow; made on first use rather than at import, where it cost every ``stead`` process start
    a hash's worth of CPU."""
    return hasher.hash("stead-dummy-secret")


TOKEN_ISSUER = "stead"


def get_account(session: Session) -> Account:
    """Return the installation's account (created by the first migration)."""
    account = session.scalars(select(Account).order_by(Account.created_at)).first()
    if account is None:
        raise RuntimeError("no account: run `stead db upgrade`")
    return account


def hash_secret(value: str) -> str:
    """argon2id hash of a secret (client secrets, agent secrets, passwords)."""
    return _hasher.hash(value)


def verify_secret(hashed: str | None, value: str) -> bool:
    """True if ``value`` matches ``hashed``; constant-ish time even for a missing hash."""
    try:
        return _hasher.verify(hashed or _dummy_hash(_hasher), value) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    """The stored form of a one-time link's token (invitations, password resets): hex SHA-256.

    The tokens are 256-bit random values, so a fast unsalted hash suffices: nothing can be
    guessed from it, and a lookup by hash is one index probe.
    """
    return hashlib.sha256(token.encode()).hexdigest()


def _check_role(role: str) -> None:
    if role not in ACCOUNT_ROLES:
        raise BadRequest(
            f"role must be one of {', '.join(ACCOUNT_ROLES)}",
            violations=[f"role: must be one of {', '.join(ACCOUNT_ROLES)}"],
        )


# --- API clients -------------------------------------------------------------------------------


def create_api_client(session: Session, *, name: str, role: str) -> tuple[ApiClient, str]:
    """Create an API client with a fresh secret (bootstrap path: ``stead admin create-client``).

    Returns:
        ``(client, secret)``: the secret in clear, to be shown once; only its hash is stored.

    Raises:
        BadRequest: unknown role or empty name.
    """
    _check_role(role)
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


def _may_manage(actor: Actor, role: str) -> None:
    """Only a Super Admin may create or change a ``SUPER_ADMIN`` client: an Admin who could
    rotate one's secret would become a Super Admin."""
    if role == "SUPER_ADMIN" and not account_allows(actor.role, "api_client.super_admin"):
        raise PermissionDenied(
            "Only a Super Admin may manage SUPER_ADMIN API clients",
            permission="api_client.super_admin",
        )


def register_client(
    session: Session, *, actor: Actor, name: str, role: str
) -> tuple[ApiClient, str]:
    """Create an API client on behalf of ``actor`` (``POST /v1/api-clients``).

    Returns ``(client, secret)``; the secret is shown once.

    Raises:
        PermissionDenied: an Admin asked for a ``SUPER_ADMIN`` client (403).
    """
    _may_manage(actor, role)
    client, secret = create_api_client(session, name=name, role=role)
    audit.record(
        session,
        actor=actor,
        action="api_client.created",
        target_type="api_client",
        target_id=client.client_id,
        details={"name": name, "role": role},
    )
    return client, secret


def list_clients(
    session: Session, *, actor: Actor, params: PageParams, q: str | None = None
) -> tuple[int, list[ApiClient]]:
    """One page of the account's API clients (revoked ones included), oldest first; with
    ``q``, only those whose name starts with it, in any case."""
    query = select(ApiClient).where(ApiClient.account_id == actor.account_id)
    if q:
        query = query.where(func.lower(ApiClient.name).startswith(q.lower(), autoescape=True))
    return paginate(session, query.order_by(ApiClient.created_at, ApiClient.id), params)


def get_client(session: Session, *, actor: Actor, client_id: str) -> ApiClient:
    """The account's API client with public id ``client_id``.

    Raises:
        NotFound: no such client in the account.
    """
    client = session.scalars(
        select(ApiClient).where(
            ApiClient.client_id == client_id, ApiClient.account_id == actor.account_id
        )
    ).first()
    if client is None:
        raise NotFound(f"API client {client_id} not found")
    return client


def rotate_secret(session: Session, *, actor: Actor, client: ApiClient) -> str:
    """Give ``client`` a new secret; return it, shown once. The old secret and every token
    issued before stop working at once.

    Raises:
        PermissionDenied: an Admin rotating a ``SUPER_ADMIN`` client.
        Conflict: the client is revoked.
    """
    _may_manage(actor, client.role)
    if client.revoked_at is not None:
        raise Conflict(f"API client {client.client_id} is revoked")
    secret = secrets.token_urlsafe(32)
    client.secret_hash = hash_secret(secret)
    client.token_version += 1  # tokens issued with the old secret stop working too
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="api_client.secret_rotated",
        target_type="api_client",
        target_id=client.client_id,
        details={"name": client.name},
    )
    return secret


def revoke_client(session: Session, *, actor: Actor, client: ApiClient) -> None:
    """Revoke ``client``: its secret and every token it holds stop working at once. Revoking a
    revoked client changes nothing.

    Raises:
        PermissionDenied: an Admin revoking a ``SUPER_ADMIN`` client.
    """
    _may_manage(actor, client.role)
    if client.revoked_at is not None:
        return
    client.revoked_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="api_client.revoked",
        target_type="api_client",
        target_id=client.client_id,
        details={"name": client.name},
    )


def find_client(session: Session, *, client_id: str) -> ApiClient | None:
    """The API client ``client_id``, revoked or not; None if there is none."""
    return session.scalars(select(ApiClient).where(ApiClient.client_id == client_id)).first()


def client_authenticates(client: ApiClient | None, client_secret: str) -> bool:
    """True when ``client`` exists, is not revoked and ``client_secret`` is its secret. As slow
    (one argon2 check) when there is no client: the answer times alike either way."""
    ok = verify_secret(client.secret_hash if client else None, client_secret)
    return client is not None and ok and client.revoked_at is None


# --- users -------------------------------------------------------------------------------------


def email_key(email: str) -> str:
    """The comparison key of an email address: emails compare case-insensitively."""
    return name_key(email)


def find_user(session: Session, *, email: str) -> User | None:
    """The user with this email (case-insensitive), if any."""
    return session.scalars(select(User).where(User.email_key == email_key(email))).first()


#: The ``password_hash`` of a user made without a password (by single sign-on or SCIM): no
#: argon2 hash, so no password verifies against it (:func:`verify_secret` answers False) until a
#: password reset sets one. Hashing a random password instead costs about 1 s of CPU per user.
NO_PASSWORD = "!"


def create_user(
    session: Session, *, email: str, password: str | None, display_name: str | None, role: str
) -> User:
    """Create a user of the account; ``password`` None makes one who cannot log in with a
    password (:data:`NO_PASSWORD`).

    Raises:
        BadRequest: unknown account role.
        Conflict: the email is taken (case-insensitive).
    """
    _check_role(role)
    if find_user(session, email=email) is not None:
        raise Conflict(
            f"A user with email {email!r} already exists",
            violations=["email: already used by another user"],
        )
    user = User(
        account_id=get_account(session).id,
        email=email,
        email_key=email_key(email),
        display_name=display_name or email.split("@", 1)[0],
        role=role,
        password_hash=NO_PASSWORD if password is None else hash_secret(password),
    )
    session.add(user)
    session.flush()
    return user


def user_actor(user: User) -> Actor:
    """The actor of a user (audit events name users by email)."""
    return Actor(
        type="user", id=user.id, name=user.email, role=user.role, account_id=user.account_id
    )


# --- tokens ------------------------------------------------------------------------------------


def issue_token(
    principal: ApiClient | User, *, key: bytes, ttl_seconds: int, grant_id: str | None = None
) -> str:
    """A signed access token for an API client or a user, valid ``ttl_seconds`` seconds
    (docs/api.md). Its ``ver`` claim is the principal's ``token_version``: raising that
    revokes the token (:func:`load_actor`). ``grant_id``: the user's CLI grant
    (:mod:`stead.identity.grants`) the token was issued under, in the ``sid`` claim; revoking
    the grant revokes the token."""
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": TOKEN_ISSUER,
        "sub": principal.id,
        "typ": "user" if isinstance(principal, User) else "api_client",
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": secrets.token_hex(8),
        "ver": principal.token_version,
    }
    if isinstance(principal, ApiClient):
        claims["client_id"] = principal.client_id
    if grant_id is not None:
        claims["sid"] = grant_id
    return jwt.encode(claims, key, algorithm="HS256")


@dataclass(frozen=True)
class TokenClaims:
    """The principal a verified bearer token names: ``type`` (``api_client`` or ``user``),
    ``id`` (its primary key), the principal's ``token_version`` when it was issued
    (``version``; 0 for tokens without a ``ver`` claim), the CLI grant it was issued under
    (``grant_id``, the ``sid`` claim; None for other tokens) and when the token expires
    (``expires_at``, Unix seconds)."""

    type: str
    id: str
    version: int = 0
    grant_id: str | None = None
    expires_at: float = field(compare=False, default=0.0)


def verify_token(token: str, *, key: bytes) -> TokenClaims:
    """Check a bearer token's HS256 signature, issuer and expiry (RFC 7519); no database.

    Raises:
        Unauthorized: bad signature, expired, malformed or missing claims.
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
    kind = "user" if claims.get("typ") == "user" else "api_client"
    version = claims.get("ver", 0)
    grant_id = claims.get("sid")
    if not isinstance(version, int) or not isinstance(grant_id, str | None):
        raise Unauthorized("The access token is invalid")
    return TokenClaims(
        type=kind,
        id=str(claims["sub"]),
        version=version,
        grant_id=grant_id,
        expires_at=float(claims["exp"]),
    )


def load_actor(session: Session, claims: TokenClaims) -> Actor:
    """The actor a verified token names, as the database has it now.

    Raises:
        Unauthorized: the client was revoked or deleted, the user no longer exists or is
            disabled, or the token was revoked (its version is not the principal's
            ``token_version``: a rotated secret, a new role, revoked tokens; or the CLI grant
            it was issued under was revoked or has expired).
    """
    if claims.type == "user":
        user = session.get(User, claims.id)
        if user is None or user.disabled_at is not None:
            raise Unauthorized("The access token's user no longer exists or is disabled")
        if user.token_version != claims.version:
            raise Unauthorized("The access token has been revoked")
        if claims.grant_id is None:
            return user_actor(user)
        grant = session.get(CliGrant, claims.grant_id)
        if grant is None or grant.user_id != user.id or not grant.is_live():
            raise Unauthorized("The access token's login has been revoked or has expired")
        return replace(user_actor(user), grant_id=grant.id)
    client = session.get(ApiClient, claims.id)
    if client is None or client.revoked_at is not None:
        raise Unauthorized("The access token's client no longer exists")
    if client.token_version != claims.version:
        raise Unauthorized("The access token has been revoked")
    return Actor(
        type="api_client",
        id=client.id,
        name=client.name,
        role=client.role,
        account_id=client.account_id,
    )


class ActorCache:
    """Tokens recently verified by :func:`verify_token` and actors recently loaded by
    :func:`load_actor`, so a burst of requests with one token checks its signature and reads
    its principal once, not once per request. A cached token is still refused after its ``exp``.

    An entry lives ``ttl`` seconds (setting ``actor_cache_seconds``; 0 turns the cache off).
    Revoking a client, rotating its secret, disabling a user, changing their role, revoking
    their tokens or one of their CLI grants through this process forgets the principal at
    once; another process on the same database sees the change within ``ttl``.

    Args:
        ttl: seconds an entry is trusted.
        max_entries: the cache is emptied when it grows past this many principals.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[TokenClaims, tuple[float, Actor]] = {}
        self._tokens: dict[str, tuple[float, TokenClaims]] = {}

    def verify(self, token: str, *, key: bytes) -> TokenClaims:
        """:func:`verify_token`, answered from the cache for a token verified before.

        Raises:
            Unauthorized: as :func:`verify_token`; a cached token past its ``exp`` is expired.
        """
        cached = self._tokens.get(token)
        if cached is not None:
            if cached[0] <= time.time():
                raise Unauthorized("The access token has expired")
            return cached[1]
        claims = verify_token(token, key=key)
        if self.ttl > 0:
            if len(self._tokens) >= self.max_entries:
                self._tokens.clear()
            self._tokens[token] = (claims.expires_at, claims)
        return claims

    def get(self, claims: TokenClaims) -> Actor | None:
        """The cached actor for ``claims``, or None when absent or older than ``ttl``."""
        entry = self._entries.get(claims)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, claims: TokenClaims, actor: Actor) -> None:
        """Remember ``actor`` for ``ttl`` seconds."""
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[claims] = (time.monotonic() + self.ttl, actor)

    def forget(self, principal_id: str) -> None:
        """Drop every entry of ``principal_id`` (a revoked or rotated client, a disabled user,
        a user whose role changed or whose tokens were revoked)."""
        for claims in [c for c in self._entries if c.id == principal_id]:
            self._entries.pop(claims, None)


# --- roles -------------------------------------------------------------------------------------


def project_role(session: Session, *, actor: Actor, project_id: str) -> str | None:
    """The actor's role in a project: ``OWNER`` for Super Admins, the membership role, or None."""
    if actor.is_super_admin:
        return "OWNER"
    where = {"project_id": project_id, "principal_type": actor.type, "principal_id": actor.id}
    return session.scalar(_ROLE, where)


#: A principal's role in a project, built once (it runs on every project-scoped request).
_ROLE = select(ProjectMember.role).where(
    ProjectMember.project_id == bindparam("project_id"),
    ProjectMember.principal_type == bindparam("principal_type"),
    ProjectMember.principal_id == bindparam("principal_id"),
)


def access_level(
    session: Session,
    *,
    actor: Actor,
    role: str | None,
    environment_id: int,
    default_level: str,
) -> str:
    """The actor's effective access level in an environment (see
    :func:`stead.identity.permissions.environment_level`)."""
    user_level = None
    if actor.type == "user":
        user_level = session.scalar(
            select(EnvironmentAccess.access_level).where(
                EnvironmentAccess.environment_id == environment_id,
                EnvironmentAccess.user_id == actor.id,
            )
        )
    return environment_level(
        project_role=role,
        is_user=actor.type == "user",
        user_level=user_level,
        default_level=default_level,
    )


def add_member(session: Session, *, project_id: str, actor: Actor, role: str) -> None:
    """Make ``actor`` a member of the project with ``role``."""
    session.add(
        ProjectMember(
            project_id=project_id, principal_type=actor.type, principal_id=actor.id, role=role
        )
    )
