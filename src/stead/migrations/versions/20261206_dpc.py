"""agent client secrets sealed for reading back (replacing their hash); secret references
without an agent

Revision ID: 20261206_dpc
Revises: 20261129_0001
Create Date: 2026-12-06 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261206_dpc"
down_revision = "20261129_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret_key_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("secret_wrapped_key", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("secret_nonce", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("secret_ciphertext", sa.LargeBinary(), nullable=True))
        # A hash cannot be shown again: agents refreshed before this revision get a new secret
        # at their first credentials read (docs/decisions.md, "Agent credentials").
        batch_op.drop_column("client_secret_hash")
    with op.batch_alter_table("secret_references", schema=None) as batch_op:
        batch_op.alter_column("agent_id", existing_type=sa.String(length=36), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("secret_references", schema=None) as batch_op:
        batch_op.alter_column("agent_id", existing_type=sa.String(length=36), nullable=False)
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_secret_hash", sa.String(length=255), nullable=True))
        batch_op.drop_column("secret_ciphertext")
        batch_op.drop_column("secret_nonce")
        batch_op.drop_column("secret_wrapped_key")
        batch_op.drop_column("secret_key_id")
