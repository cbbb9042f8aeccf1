"""secret scopes: the store paths each project's secret references may name

Revision ID: 20261206_scopes
Revises: 20261206_idsec
Create Date: 2026-12-06 03:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import stead.db

revision = "20261206_scopes"
down_revision = "20261206_idsec"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secret_scopes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("store", sa.String(length=16), nullable=False),
        sa.Column("prefixes", sa.JSON(), nullable=False),
        sa.Column("created_at", stead.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stead.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_secret_scopes_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_scopes")),
    )
    with op.batch_alter_table("secret_scopes", schema=None) as batch_op:
        batch_op.create_index(
            "uq_secret_scopes_project_store", ["project_id", "store"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("secret_scopes", schema=None) as batch_op:
        batch_op.drop_index("uq_secret_scopes_project_store")
    op.drop_table("secret_scopes")
