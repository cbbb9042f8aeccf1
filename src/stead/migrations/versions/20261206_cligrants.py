"""cli grants: people signed in on the command line, their refresh tokens and login codes

Revision ID: 20261206_cligrants
Revises: 20261206_scim
Create Date: 2026-12-06 09:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import stead.db

revision = "20261206_cligrants"
down_revision = "20261206_scim"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", stead.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stead.db.UTCDateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "cli_grants",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("last_used_at", stead.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", stead.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", stead.db.UTCDateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_cli_grants_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cli_grants")),
    )
    op.create_index(op.f("ix_cli_grants_user_id"), "cli_grants", ["user_id"], unique=False)
    op.create_table(
        "cli_refresh_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("grant_id", sa.String(length=36), nullable=False),
        sa.Column("used_at", stead.db.UTCDateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["cli_grants.id"],
            name=op.f("fk_cli_refresh_tokens_grant_id_cli_grants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_cli_refresh_tokens")),
    )
    op.create_index(
        op.f("ix_cli_refresh_tokens_grant_id"), "cli_refresh_tokens", ["grant_id"], unique=False
    )
    op.create_table(
        "cli_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("challenge", sa.String(length=64), nullable=False),
        sa.Column("redirect_uri", sa.String(length=255), nullable=False),
        sa.Column("device_name", sa.String(length=100), nullable=False),
        sa.Column("expires_at", stead.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("grant_id", sa.String(length=36), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_cli_codes_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["cli_grants.id"],
            name=op.f("fk_cli_codes_grant_id_cli_grants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_cli_codes")),
    )
    op.create_index(op.f("ix_cli_codes_user_id"), "cli_codes", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("cli_codes")
    op.drop_table("cli_refresh_tokens")
    op.drop_table("cli_grants")
