"""Wire models of ``/v1/scim-tokens`` (docs/scim.md, "Tokens")."""

from __future__ import annotations

from stead.wire import Name, Timestamp, WireModel


class ScimTokenCreate(WireModel):
    """``POST /v1/scim-tokens`` body: a name that tells which identity provider uses it."""

    name: Name


class ScimTokenRead(WireModel):
    """A SCIM token as read back: never its value."""

    id: str
    name: str
    created_by: str
    last_used_at: Timestamp | None
    revoked_at: Timestamp | None
    created_at: Timestamp


class ScimTokenCreated(ScimTokenRead):
    """A SCIM token with its value: the only response that shows it."""

    token: str
