"""Table: environments and their connection overrides (docs/api.md, Environments)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from stead.agents.models import Agent
from stead.connections.models import Connection
from stead.db import Base


class Environment(Base):
    """An environment of a project.

    ``connection_properties`` holds the override's properties as stored: each key maps to
    ``{"value": str}`` for a plain value or ``{"secretName": str, "secretKey": str | None}`` for a
    reference; never a sensitive value.
    """

    __tablename__ = "environments"
    __table_args__ = (
        Index("uq_environments_project_name_key", "project_id", "name_key", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    name: Mapped[str] = mapped_column(String(255))
    name_key: Mapped[str] = mapped_column(String(1024))
    display_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    default_agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"))
    default_user_access_level: Mapped[str] = mapped_column(String(20))
    connection_properties: Mapped[dict[str, Any]] = mapped_column(JSON)

    agent: Mapped[Agent] = relationship(lazy="joined")
    connection: Mapped[Connection] = relationship(lazy="joined")
