"""key check values: which master key and signing key the database's data depends on

Revision ID: 20261206_keycheck
Revises: 20261206_auditidx
Create Date: 2026-12-06 06:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import stead.db

revision = "20261206_keycheck"
down_revision = "20261206_auditidx"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_checks",
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("check_value", sa.String(length=64), nullable=False),
        sa.Column("created_at", stead.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stead.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_key_checks")),
    )


def downgrade() -> None:
    op.drop_table("key_checks")
