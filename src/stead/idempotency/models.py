"""Table: idempotency keys (docs/api.md: ``Idempotency-Key`` on any POST)."""

from __future__ import annotations

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stead.db import Base, UUIDStr, new_uuid


class IdempotencyKey(Base):
    """A key a principal sent with a POST, and the first response to it.

    ``request_hash`` is an HMAC-SHA256 (keyed with the server's signing key) of the method, path,
    query and canonical JSON body, so a body holding a secret cannot be guessed back from it.
    ``status`` is null until the response is recorded; one-time secrets are never recorded.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        Index("uq_idempotency_keys_principal_key", "principal_id", "key", unique=True),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    principal_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(Text)
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(default=None)
    response_body: Mapped[str | None] = mapped_column(Text, default=None)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)
