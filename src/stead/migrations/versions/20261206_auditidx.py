"""audit indexes: one per filter of the audit trail, each ending in its order (created_at, id)

Revision ID: 20261206_auditidx
Revises: 20261206_people
Create Date: 2026-12-06 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261206_auditidx"
down_revision = "20261206_people"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_action")
        batch_op.drop_index("ix_audit_events_project_id")
        batch_op.create_index(
            "ix_audit_events_project_created", ["project_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_audit_events_action_created", ["action", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_audit_events_actor_created", ["actor_id", "created_at", "id"], unique=False
        )
    op.create_index(
        "ix_audit_events_actor_name_created",
        "audit_events",
        [sa.text("lower(actor_name)"), "created_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_audit_events_actor_name_created", table_name="audit_events")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_actor_created")
        batch_op.drop_index("ix_audit_events_action_created")
        batch_op.drop_index("ix_audit_events_project_created")
        batch_op.create_index("ix_audit_events_project_id", ["project_id"], unique=False)
        batch_op.create_index("ix_audit_events_action", ["action"], unique=False)
