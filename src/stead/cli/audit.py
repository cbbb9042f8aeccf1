"""``stead audit``: read the audit trail of a running server (``GET /v1/audit-events``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from stead.cli.apply import ClientId, ClientSecret, Profile, Url, _client

if TYPE_CHECKING:
    from stead.audit.schemas import AuditEventRead


def audit(
    project_id: Annotated[
        str | None, typer.Option("--project-id", help="only this project's events")
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", help="actor id or name (email, client name)")
    ] = None,
    action: Annotated[str | None, typer.Option("--action", help="e.g. environment.created")] = None,
    since: Annotated[str | None, typer.Option("--from", help="RFC 3339 time, inclusive")] = None,
    until: Annotated[str | None, typer.Option("--to", help="RFC 3339 time, exclusive")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    url: Url = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = "default",
) -> None:
    """Print the audit events you may read, oldest first (filters as in the API)."""

    with _client(url, client_id, client_secret, profile) as client:
        events = client.audit_events.list(
            project_id=project_id, actor=actor, action=action, since=since, until=until
        )
        for event in events:
            typer.echo(event.model_dump_json(by_alias=True) if as_json else _line(event))


def _line(event: AuditEventRead) -> str:
    """``<time> <action> <actor> -> <target> [project=...] [details]``."""
    created = event.model_dump(mode="json", by_alias=True)["createdAt"]
    parts = [
        created,
        event.action,
        f"{event.actor.type}:{event.actor.name}",
        f"-> {event.target.type}:{event.target.id}",
    ]
    if event.project_id:
        parts.append(f"project={event.project_id}")
    if event.details:
        parts.append(json.dumps(event.details, sort_keys=True))
    return "  ".join(parts)
