"""SCIM bearer tokens: what an identity provider sends to ``/scim/v2`` (RFC 7644 section 2),
made and revoked by account admins (``/v1/scim-tokens``, the console, ``stead admin
scim-token``; docs/scim.md, "Tokens").

Kept apart from :mod:`stead.scim.service` so that the API, the console and the CLI use tokens
without loading ``scim2-models``, which only SCIM requests need.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from stead import audit
from stead.db import utcnow
from stead.errors import BadRequest, NotFound
from stead.identity.actor import Actor
from stead.identity.service import token_hash
from stead.pagination import PageParams, paginate
from stead.scim.models import ScimToken
from stead.scim.schemas import ScimTokenRead

#: ``last_used_at`` of a token is written at most this often.
LAST_USED_PRECISION = timedelta(seconds=60)
#: The actor's account role: a SCIM token may do to users what an account Admin may (it cannot
#: change, disable or delete a Super Admin), whoever made it.
SCIM_ROLE = "ADMIN"


def create_token(session: Session, *, actor: Actor, name: str) -> tuple[ScimToken, str]:
    """Make a SCIM bearer token named ``name`` for an identity provider.

    The token is 256 bits from :func:`secrets.token_urlsafe`; only its SHA-256 is stored.
    Audited as ``scim_token.created``.

    Returns:
        ``(token, value)``: the value in clear, to be shown once.

    Raises:
        BadRequest: the name is empty or longer than 255 characters.
    """
    name = name.strip()
    if not name or len(name) > 255:
        raise BadRequest(
            "name must be 1-255 characters", violations=["name: must be 1-255 characters"]
        )
    value = secrets.token_urlsafe(32)
    token = ScimToken(
        account_id=actor.account_id,
        name=name,
        token_hash=token_hash(value),
        created_by=actor.name,
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="scim_token.created",
        target_type="scim_token",
        target_id=token.id,
        details={"name": name},
    )
    return token, value


def list_tokens(
    session: Session, *, actor: Actor, params: PageParams
) -> tuple[int, list[ScimToken]]:
    """One page of the account's SCIM tokens (revoked ones included), oldest first."""
    query = (
        select(ScimToken)
        .where(ScimToken.account_id == actor.account_id)
        .order_by(ScimToken.created_at, ScimToken.id)
    )
    return paginate(session, query, params)


def get_token(session: Session, *, actor: Actor, token_id: str) -> ScimToken:
    """The account's SCIM token ``token_id``.

    Raises:
        NotFound: no such token in the account.
    """
    token = session.get(ScimToken, token_id)
    if token is None or token.account_id != actor.account_id:
        raise NotFound(f"SCIM token {token_id} not found")
    return token


def revoke_token(session: Session, *, actor: Actor, token: ScimToken) -> None:
    """Revoke ``token``: the next request that sends it is refused. Revoking it again changes
    nothing. Audited as ``scim_token.revoked``."""
    if token.revoked_at is not None:
        return
    token.revoked_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="scim_token.revoked",
        target_type="scim_token",
        target_id=token.id,
        details={"name": token.name},
    )


def find_token(session: Session, *, value: str) -> ScimToken | None:
    """The live (not revoked) SCIM token whose value is ``value``, or None."""
    token = session.scalars(
        select(ScimToken).where(ScimToken.token_hash == token_hash(value))
    ).first()
    if token is None or token.revoked_at is not None:
        return None
    return token


def note_use(session: Session, *, token_id: str) -> None:
    """Set the token's ``last_used_at`` to now, unless it was set less than
    :data:`LAST_USED_PRECISION` ago."""
    token = session.get(ScimToken, token_id)
    now = utcnow()
    if token is not None and (
        token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION
    ):
        token.last_used_at = now


def token_actor(token: ScimToken) -> Actor:
    """The actor a SCIM request acts as: type ``scim_token``, named ``scim:<token name>`` in
    audit events, with the account role :data:`SCIM_ROLE`."""
    return Actor(
        type="scim_token",
        id=token.id,
        name=f"scim:{token.name}",
        role=SCIM_ROLE,
        account_id=token.account_id,
    )


def token_read(token: ScimToken) -> ScimTokenRead:
    """The wire form of a SCIM token: never its value."""
    return ScimTokenRead(
        id=token.id,
        name=token.name,
        created_by=token.created_by,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
        created_at=token.created_at,
    )
