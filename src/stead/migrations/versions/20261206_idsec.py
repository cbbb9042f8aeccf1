"""identity hardening: token versions, disabled users, login failures per (email, source)

Revision ID: 20261206_idsec
Revises: 20261206_dpc
Create Date: 2026-12-06 03:25:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import stead.db

revision = "20261206_idsec"
down_revision = "20261206_dpc"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", stead.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", stead.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stead.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
        sa.UniqueConstraint("email_key", "source", name=op.f("uq_login_failures_email_key_source")),
    )
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("token_version", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("token_version", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("disabled_at", stead.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.drop_column("locked_until")
        batch_op.drop_column("failed_logins")


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("locked_until", stead.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.drop_column("disabled_at")
        batch_op.drop_column("token_version")
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.drop_column("token_version")
    op.drop_table("login_failures")
