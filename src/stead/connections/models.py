"""Table: a project's data-platform connections (docs/api.md, Connections)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from stead.db import Base


class Connection(Base):
    """A DWH connection's metadata; credentials arrive per environment
    (docs/api.md, Connections)."""

    __tablename__ = "connections"
    __table_args__ = (
        Index("uq_connections_project_name_key", "project_id", "name_key", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    name_key: Mapped[str] = mapped_column(String(1024))
    platform_connection_type: Mapped[str] = mapped_column(String(20))
    auth_provider: Mapped[str] = mapped_column(String(20))
    auth_type: Mapped[str] = mapped_column(String(20))
