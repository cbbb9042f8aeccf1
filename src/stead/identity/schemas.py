"""Wire models of identity: the token response (contract section 1) and API client output."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class TokenResponse(BaseModel):
    """OAuth 2.0 access token response (RFC 6749 section 5.1)."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class ClientCredentials(BaseModel):
    """A new API client's credentials; the secret is shown only here, once."""

    clientId: str
    clientSecret: str
    role: str
    name: str
