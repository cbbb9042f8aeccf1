"""Wire models of the audit trail (docs/api.md, Audit)."""

from __future__ import annotations

from typing import Any

from stead.wire import Timestamp, WireModel


class AuditActor(WireModel):
    """Who acted: ``type`` (``user``, ``api_client``), ``id``, and ``name`` as it was then (a
    user's email, a client's name)."""

    type: str
    id: str
    name: str


class AuditTarget(WireModel):
    """What was acted on: ``type`` (``project``, ``environment``, ``request`` ...) and ``id``."""

    type: str
    id: str


class AuditEventRead(WireModel):
    """One audit event: never a secret."""

    id: int
    created_at: Timestamp
    action: str
    actor: AuditActor
    target: AuditTarget
    project_id: str | None
    request_id: str | None
    source_ip: str | None
    details: dict[str, Any]
