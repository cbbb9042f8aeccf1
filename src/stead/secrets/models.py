"""Table: secret references (contract section 5)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stead.db import Base


class SecretReference(Base):
    """A pointer to a secret held in an external store (or the hosted one), resolved by an agent."""

    __tablename__ = "secret_references"
    __table_args__ = (
        Index("uq_secret_references_project_name_key", "project_id", "name_key", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    name_key: Mapped[str] = mapped_column(String(512))
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"))
    agent_type: Mapped[str] = mapped_column(String(32))
    secret_reference_type: Mapped[str] = mapped_column(String(32))
    secret_name: Mapped[str] = mapped_column(String(1024))
    secret_key: Mapped[str | None] = mapped_column(String(255), default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
