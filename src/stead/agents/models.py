"""Tables: agents and their project allow-lists (docs/api.md, Agents)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from stead.db import Base, UTCDateTime, UUIDStr, new_uuid


class Agent(Base):
    """An agent of the account. ``is_hosted`` marks the account's one hosted (FULL_SAAS) agent.

    Names are unique per account, compared case-insensitively (``name_key``, docs/api.md).

    Agent credentials (docs/decisions.md, "Agent credentials"): ``client_id`` in clear; the
    secret sealed with the hosted-secret master keyring, so that ``GET .../credentials`` can
    show it again: ``secret_ciphertext`` under a per-secret AES-256-GCM data key with
    ``secret_nonce``, the data key wrapped by the master key ``secret_key_id``
    (``stead.secrets.store``). Never in clear.
    """

    __tablename__ = "agents"
    __table_args__ = (
        Index("ix_agents_account_created", "account_id", "created_at", "id"),
        Index("uq_agents_account_name_key", "account_id", "name_key", unique=True),
    )

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str] = mapped_column(String(255))
    name_key: Mapped[str] = mapped_column(String(1024))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    agent_type: Mapped[str] = mapped_column(String(40))
    cloud_provider: Mapped[str] = mapped_column(String(20))
    deployment: Mapped[str] = mapped_column(String(40))
    agent_status: Mapped[str] = mapped_column(String(20), default="STOPPED")
    connected: Mapped[bool] = mapped_column(Boolean, default=False)
    enable_auto_updates: Mapped[bool] = mapped_column(Boolean, default=True)
    restricted_access: Mapped[bool] = mapped_column(Boolean, default=False)
    track_name: Mapped[str | None] = mapped_column(String(64), default=None)
    is_hosted: Mapped[bool] = mapped_column(Boolean, default=False)
    client_id: Mapped[str | None] = mapped_column(String(64), default=None)
    credentials_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    secret_key_id: Mapped[str | None] = mapped_column(String(32), default=None)
    secret_wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    secret_nonce: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)


class AgentAllowedProject(Base):
    """One project a restricted agent may serve; ``environments`` lists environment names
    (empty: all of the project's environments)."""

    __tablename__ = "agent_allowed_projects"
    __table_args__ = (UniqueConstraint("agent_id", "project_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    environments: Mapped[list[Any]] = mapped_column(JSON, default=list)
