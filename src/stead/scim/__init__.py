"""SCIM 2.0 user and group provisioning at ``/scim/v2`` (RFC 7643, RFC 7644; docs/scim.md).

- :mod:`stead.scim.routes`: the routes, SCIM's authentication and its error bodies.
- :mod:`stead.scim.protocol`: the answers, with ``scim2-models``, loaded on the first SCIM
  request; :mod:`stead.scim.service`: the rules for users and groups it applies.
- :mod:`stead.scim.tokens`: the bearer tokens identity providers send.
"""

from __future__ import annotations

#: Where SCIM is served.
PREFIX = "/scim/v2"


class ScimError(Exception):
    """A SCIM request refused with a SCIM error body (RFC 7644 section 3.12), raised for a
    ``SCIMException`` of ``scim2-models`` by :func:`stead.scim.protocol.scim_errors`.

    Args:
        status: the HTTP status (400, 404, 409, 501 ...).
        scim_type: the ``scimType`` (``invalidFilter``, ``uniqueness`` ...), or None.
        detail: what was wrong, for people.
    """

    def __init__(self, status: int, scim_type: str | None, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.scim_type = scim_type
        self.detail = detail
