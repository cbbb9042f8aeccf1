"""Tables: SCIM bearer tokens, what an identity provider told Stead about a user, SCIM groups
and their members (docs/scim.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stead.db import Base, UTCDateTime, UUIDStr, new_uuid


class ScimToken(Base):
    """A bearer token an identity provider sends to ``/scim/v2``.

    Only the SHA-256 of the 256-bit random token is stored (``token_hash``). ``revoked_at``
    set: the token is refused. ``last_used_at`` is updated at most once a minute.
    """

    __tablename__ = "scim_tokens"

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(255))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class ScimUser(Base):
    """The SCIM side of a user the identity provider wrote: its ``userName`` (unique,
    case-insensitive through ``user_name_key``), ``externalId`` and the other attributes it
    sent (``attributes``: the SCIM resource without ``id``, ``meta``, ``groups``, ``active`` and
    ``password``, which is never kept). A user Stead made otherwise has no row here."""

    __tablename__ = "scim_users"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    user_name: Mapped[str] = mapped_column(String(320))
    user_name_key: Mapped[str] = mapped_column(String(320), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ScimGroup(Base):
    """A group the identity provider pushed. Its ``display_name`` is what
    ``STEAD_OIDC_GROUP_ROLES`` maps to roles; names are unique, case-insensitive."""

    __tablename__ = "scim_groups"

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    display_name: Mapped[str] = mapped_column(String(255))
    display_name_key: Mapped[str] = mapped_column(String(255), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(255), default=None, index=True)


class ScimGroupMember(Base):
    """A user's membership of a SCIM group."""

    __tablename__ = "scim_group_members"
    __table_args__ = (UniqueConstraint("group_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("scim_groups.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
