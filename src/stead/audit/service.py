"""Writing audit events: one per change, in the change's own transaction (ARCHITECTURE rule 4)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from stead.audit.models import AuditEvent
from stead.identity.service import Actor


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str,
    project_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event to the session (committed or rolled back with the change).

    Args:
        action: ``<noun>.<past verb>``, e.g. ``environment.created``.
        details: non-secret facts about the change (never a credential).
    """
    event = AuditEvent(
        account_id=actor.account_id,
        actor_type=actor.type,
        actor_id=actor.id,
        actor_name=actor.name,
        action=action,
        target_type=target_type,
        target_id=target_id,
        project_id=project_id,
        details=details or {},
    )
    session.add(event)
    return event
