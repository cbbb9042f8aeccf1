"""Tables: the account, its API clients, and project memberships."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from stead.db import Base, UTCDateTime, UUIDStr, new_uuid


class Account(Base):
    """The installation's account (one per installation for now)."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255))


class ApiClient(Base):
    """An API client: ``client_id`` plus a secret stored only as an argon2id hash."""

    __tablename__ = "api_clients"

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class ProjectMember(Base):
    """A principal's role in a project (``OWNER``, ``CONTRIBUTOR``, ``VIEWER``).

    ``principal_type`` is ``api_client`` today; users join with the people-and-access work.
    """

    __tablename__ = "project_members"
    __table_args__ = (UniqueConstraint("project_id", "principal_type", "principal_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    principal_type: Mapped[str] = mapped_column(String(20))
    principal_id: Mapped[str] = mapped_column(UUIDStr, index=True)
    role: Mapped[str] = mapped_column(String(20))
