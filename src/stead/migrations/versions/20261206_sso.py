"""sso: single sign-on logins under way, and the identity provider accounts users sign in with

Revision ID: 20261206_sso
Revises: 20261206_keycheck
Create Date: 2026-12-06 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import stead.db

revision = "20261206_sso"
down_revision = "20261206_keycheck"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sso_requests",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("browser_hash", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("next_url", sa.String(length=2048), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("expires_at", stead.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", stead.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stead.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_sso_requests")),
    )
    with op.batch_alter_table("sso_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sso_requests_address"), ["address"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_sso_requests_expires_at"), ["expires_at"], unique=False
        )
    op.create_table(
        "sso_identities",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("issuer", sa.String(length=1024), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("last_login_at", stead.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", stead.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stead.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_sso_identities_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_identities")),
        sa.UniqueConstraint("issuer", "subject", name=op.f("uq_sso_identities_issuer_subject")),
    )
    with op.batch_alter_table("sso_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sso_identities_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sso_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sso_identities_user_id"))
    op.drop_table("sso_identities")
    with op.batch_alter_table("sso_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sso_requests_expires_at"))
        batch_op.drop_index(batch_op.f("ix_sso_requests_address"))
    op.drop_table("sso_requests")
