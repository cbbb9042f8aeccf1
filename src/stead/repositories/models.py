"""Table: the repository associated with a project (docs/api.md, Repository); never the token, never
a private key (the deploy key's private half is a hosted secret)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from stead.db import Base


class Repository(Base):
    """One git repository per project.

    ``deploy_key`` is the deploy key Stead registered with the provider, in wire form
    (``{"id", "fingerprint", "readOnly", "secretName"}``: provider id, ``SHA256:`` fingerprint of
    the public key, read-only flag, and the hosted secret holding the private key), or None; then
    ``deploy_key_reason`` says why there is none.
    """

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
    deploy_key: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    deploy_key_reason: Mapped[str | None] = mapped_column(String(500), default=None)
