"""Tables: secret references, hosted secrets with their encrypted versions, key check values."""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stead.db import Base


class SecretReference(Base):
    """A pointer to a secret held in an external store (or the hosted one), resolved by an agent:
    ``agent_id`` when the reference names one, else the agent of the environment that uses it."""

    __tablename__ = "secret_references"
    __table_args__ = (
        Index("uq_secret_references_project_name_key", "project_id", "name_key", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    name_key: Mapped[str] = mapped_column(String(512))
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id"), default=None)
    agent_type: Mapped[str] = mapped_column(String(32))
    secret_reference_type: Mapped[str] = mapped_column(String(32))
    secret_name: Mapped[str] = mapped_column(String(1024))
    secret_key: Mapped[str | None] = mapped_column(String(255), default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)


class HostedSecret(Base):
    """A secret held by Stead itself (the hosted store): metadata only.

    ``name`` shares the project's namespace with secret references (compared by ``name_key``);
    ``version`` is the number of the latest :class:`HostedSecretVersion`.
    """

    __tablename__ = "hosted_secrets"
    __table_args__ = (
        Index("uq_hosted_secrets_project_name_key", "project_id", "name_key", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    name_key: Mapped[str] = mapped_column(String(1024))
    type: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)


class HostedSecretVersion(Base):
    """One encrypted value of a hosted secret (envelope encryption, see ``stead.secrets.store``).

    ``ciphertext`` is the value under a per-version AES-256-GCM data key with ``nonce``;
    ``wrapped_key`` is that data key encrypted by the master key ``key_id`` (12-byte nonce
    followed by the AES-GCM output). Neither the data key nor the master key is stored in clear.
    """

    __tablename__ = "hosted_secret_versions"
    __table_args__ = (
        Index("uq_hosted_secret_versions_secret_version", "secret_id", "version", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    secret_id: Mapped[int] = mapped_column(ForeignKey("hosted_secrets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    key_id: Mapped[str] = mapped_column(String(32))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)


class SecretScope(Base):
    """The part of one external store a project's secret references may name, as set by an
    account admin (docs/decisions.md, "Secret scopes"). ``store`` is an ``agentType``
    (``AWS``, ``Vault``, ``Azure``, ``GCP``); ``prefixes`` the list of name or path prefixes.
    A project without a row for a store has that store's default scope (``stead.secrets.scopes``).
    """

    __tablename__ = "secret_scopes"
    __table_args__ = (Index("uq_secret_scopes_project_store", "project_id", "store", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    store: Mapped[str] = mapped_column(String(16))
    prefixes: Mapped[list[str]] = mapped_column(JSON)


class KeyCheck(Base):
    """A key check value: proof, without the key, of which key the database's data depends on.

    ``name`` is ``master`` (the master key that wraps hosted secrets' data keys) or ``signing``
    (the key that signs access tokens); ``check_value`` is :func:`key_check_value` of that key.
    A server that starts with another key refuses to run (docs/operations.md, "Keys").
    """

    __tablename__ = "key_checks"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    check_value: Mapped[str] = mapped_column(String(64))


def key_check_value(key: bytes, name: str) -> str:
    """The check value of ``key`` used as key ``name``: hex HMAC-SHA256 (RFC 2104) under the key
    of a fixed label. It tells keys apart and reveals nothing of the key."""
    return hmac.new(key, b"stead key check v1\x00" + name.encode(), hashlib.sha256).hexdigest()
