"""The OAuth 2.0 token endpoint (contract section 1; RFC 6749 sections 4.4 and 5)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse

from stead.db import SessionDep
from stead.identity.schemas import TokenResponse
from stead.identity.service import authenticate_client, issue_token

router = APIRouter(tags=["auth"])


def _oauth_error(error: str, description: str, status: int) -> JSONResponse:
    """An RFC 6749 section 5.2 error response."""
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="stead"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    """Client credentials from ``Authorization: Basic`` (RFC 6749 section 2.3.1), if present."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


@router.post(
    "/oauth/dpc/token",
    response_model=TokenResponse,
    responses={
        400: {"description": "invalid_request / unsupported_grant_type"},
        401: {"description": "invalid_client"},
    },
)
@router.post("/oauth/token", response_model=TokenResponse, include_in_schema=False)
def token(
    request: Request,
    session: SessionDep,
    grant_type: Annotated[str | None, Form()] = None,
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
    audience: Annotated[str | None, Form()] = None,
) -> JSONResponse:
    """Exchange client credentials for a bearer token valid 1800 s.

    Form-encoded ``grant_type=client_credentials``, ``client_id``, ``client_secret`` (or HTTP Basic
    client authentication), optional ``audience`` (accepted for DPC compatibility, not checked).
    """
    if grant_type is None:
        return _oauth_error("invalid_request", "grant_type is required", 400)
    if grant_type != "client_credentials":
        return _oauth_error("unsupported_grant_type", "only client_credentials is supported", 400)
    basic = _basic_credentials(request)
    if basic is not None:
        client_id, client_secret = basic
    if not client_id or not client_secret:
        return _oauth_error("invalid_request", "client_id and client_secret are required", 400)
    client = authenticate_client(session, client_id=client_id, client_secret=client_secret)
    if client is None:
        return _oauth_error("invalid_client", "client authentication failed", 401)
    ttl = request.app.state.settings.token_ttl_seconds
    access = issue_token(client, key=request.app.state.signing_key, ttl_seconds=ttl)
    return JSONResponse(
        {"access_token": access, "token_type": "Bearer", "expires_in": ttl},
        headers={"Cache-Control": "no-store"},
    )
