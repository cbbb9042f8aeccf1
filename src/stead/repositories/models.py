"""Table: the repository associated with a project (contract section 6); never the token."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from stead.db import Base


class Repository(Base):
    """One git repository per project."""

    __tablename__ = "repositories"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), unique=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    repository_name: Mapped[str] = mapped_column(String(255))
    provider_parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    default_branch: Mapped[str | None] = mapped_column(String(255), default=None)
    html_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    clone_url: Mapped[str | None] = mapped_column(String(2048), default=None)
