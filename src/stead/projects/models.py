"""Table: projects (contract section 2)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stead.db import Base, UUIDStr, new_uuid


class Project(Base):
    """A data project: name (unique per account, case-insensitive), warehouse, deployment type."""

    __tablename__ = "projects"
    __table_args__ = (
        Index("uq_projects_account_name_key", "account_id", "name_key", unique=True),
        Index("ix_projects_account_created", "account_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str] = mapped_column(String(255))
    name_key: Mapped[str] = mapped_column(String(1024))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    warehouse: Mapped[str] = mapped_column(String(20))
    agent_deployment_type: Mapped[str] = mapped_column(String(20))
