"""The authenticated principal of a request, as every domain sees it (audit events, permission
checks, services). A module of its own, so that audit and the domains need nothing else of
identity to name it."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Actor:
    """The authenticated principal of a request.

    Attributes:
        type: ``api_client`` or ``user``.
        id: the principal's primary key (UUID string).
        name: the client's name or the user's email, kept in audit events.
        role: account role, one of ``ACCOUNT_ROLES``.
        account_id: the account the principal belongs to.
        request_id: the request's ``X-Request-ID``, written into audit events.
        source_ip: the client address of the request, written into audit events.
        grant_id: for a user on the command line, the CLI grant their token was issued
            under (:mod:`stead.identity.grants`); None otherwise.
    """

    type: str
    id: str
    name: str
    role: str
    account_id: str
    request_id: str | None = None
    source_ip: str | None = None
    grant_id: str | None = None

    @property
    def is_super_admin(self) -> bool:
        """True for ``SUPER_ADMIN``, who sees and owns every project (docs/api.md, People)."""
        return self.role == "SUPER_ADMIN"

    def with_request(self, *, request_id: str | None, source_ip: str | None) -> Actor:
        """This actor, tagged with the request it acts in."""
        return replace(self, request_id=request_id, source_ip=source_ip)
