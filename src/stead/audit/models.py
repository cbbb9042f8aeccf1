"""Table: audit events, one per change, written in the change's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from stead.db import Base, UUIDStr


class AuditEvent(Base):
    """Who did what to which object, from where.

    ``actor_*`` is a snapshot of the principal (its name may change later). ``project_id`` has
    no foreign key: history outlives projects. ``request_id`` is the request's ``X-Request-ID``,
    ``source_ip`` the client address the server saw.
    """

    __tablename__ = "audit_events"
    # One index per filter, each ending in the list's order (created_at, id): a page of a
    # filtered list is a short walk of one index from either end, however many events match.
    __table_args__ = (
        Index("ix_audit_events_created", "created_at", "id"),
        Index("ix_audit_events_project_created", "project_id", "created_at", "id"),
        Index("ix_audit_events_action_created", "action", "created_at", "id"),
        Index("ix_audit_events_actor_created", "actor_id", "created_at", "id"),
        Index(
            "ix_audit_events_actor_name_created",
            func.lower(text("actor_name")),
            "created_at",
            "id",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(UUIDStr)
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str] = mapped_column(String(64))
    actor_name: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str | None] = mapped_column(UUIDStr, default=None)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    source_ip: Mapped[str | None] = mapped_column(String(64), default=None)
