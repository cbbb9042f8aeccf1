"""GCP Secret Manager through google-cloud-secret-manager over REST (extra ``stead[gcp]``).

Vendor rules (Secret Manager REST reference, "projects.secrets.versions.access"): a value is
read with ``GET /v1/projects/*/secrets/*/versions/*:access``; ``latest`` names the newest
version; the answer's ``payload.data`` is base64 bytes; errors are Google's JSON error objects:
404 ``NOT_FOUND`` (no such secret or version), 403 ``PERMISSION_DENIED`` (no
``secretmanager.versions.access`` permission), 401 ``UNAUTHENTICATED``, 400
``FAILED_PRECONDITION`` (the version is disabled or destroyed). Secret ids are 1-255 letters,
digits, ``-`` and ``_``.

A reference's ``secretName`` is a secret id (read from ``gcp_project``, latest version),
``ID/versions/VERSION``, or a full ``projects/P/secrets/ID[/versions/VERSION]`` name. The REST
transport is used so one HTTP stack, timeout and endpoint setting apply.
"""

from __future__ import annotations

import re
from typing import Any

from stead.secrets.resolvers.base import (
    FIELD,
    access_denied,
    bad_name,
    checked_policy,
    not_configured,
    not_found,
    not_text,
    pick,
    timed_out,
    unreachable,
)
from stead.settings import Settings

STORE = "GCP Secret Manager"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_ID = r"[A-Za-z0-9_-]{1,255}"
_VERSION = r"(?:[1-9][0-9]{0,18}|latest)"
_SHORT = re.compile(rf"({_ID})(?:/versions/({_VERSION}))?")
_FULL = re.compile(rf"projects/([a-z0-9.:-]{{1,100}})/secrets/({_ID})(?:/versions/({_VERSION}))?")
NAME_RULE = "a secret id, ID/versions/VERSION, or projects/PROJECT/secrets/ID[/versions/VERSION]"


def version_name(name: str, project: str) -> str:
    """The full version resource name that ``name`` means (module docstring).

    Raises:
        SecretNotFound: ``name`` has none of the accepted forms.
        StoreNotConfigured: ``name`` is a bare id and ``gcp_project`` is empty.
    """
    full = _FULL.fullmatch(name)
    if full:
        return f"projects/{full[1]}/secrets/{full[2]}/versions/{full[3] or 'latest'}"
    short = _SHORT.fullmatch(name)
    if not short:
        raise bad_name(STORE, name, NAME_RULE)
    if not project:
        raise not_configured(STORE, "no project (STEAD_GCP_PROJECT) for a bare secret id")
    return f"projects/{project}/secrets/{short[1]}/versions/{short[2] or 'latest'}"


def check_name(name: str) -> str:
    """``name`` if it has one of the accepted forms (module docstring), else raise
    SecretNotFound (400)."""
    if not (_FULL.fullmatch(name) or _SHORT.fullmatch(name)):
        raise bad_name(STORE, name, NAME_RULE)
    return name


class GcpResolver:
    """Reads secret versions with the ``gcp_*`` settings' endpoint and credentials."""

    store = STORE

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def resolve(self, name: str, *, key: str | None) -> str:
        """The value of secret ``name`` (module docstring for its forms), or its JSON member
        ``key``; errors as in :mod:`stead.secrets.resolvers.base`."""
        try:
            import google.auth
            import requests
            from google.api_core import exceptions as gexc
            from google.api_core.client_options import ClientOptions
            from google.auth import exceptions as auth_exc
            from google.cloud import secretmanager
            from google.oauth2 import service_account
        except ImportError:
            raise not_configured(STORE, "install Stead with the gcp extra") from None
        s = self.settings
        resource = version_name(name, s.gcp_project)
        policy = checked_policy(s, s.gcp_endpoint)
        timeout = s.secret_store_timeout_seconds
        credentials: Any
        try:
            if s.gcp_credentials_file:
                credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                    s.gcp_credentials_file, scopes=[SCOPE]
                )
            else:
                credentials, _ = google.auth.default(scopes=[SCOPE])
        except (OSError, ValueError, auth_exc.DefaultCredentialsError):
            raise not_configured(STORE, "no usable GCP credentials") from None
        client = secretmanager.SecretManagerServiceClient(
            credentials=credentials,
            transport="rest",
            client_options=ClientOptions(api_endpoint=s.gcp_endpoint),
        )
        # The REST transport's requests session follows redirects: each is checked first.
        session: Any = client.transport._session  # type: ignore[attr-defined]
        session.hooks["response"].append(policy.requests_hook("secret_store", field=FIELD))
        try:
            answer = client.access_secret_version(name=resource, retry=None, timeout=timeout)
        except (gexc.NotFound, gexc.BadRequest):
            # Over REST a disabled or destroyed version (FAILED_PRECONDITION) arrives as 400.
            raise not_found(STORE, name) from None
        except (gexc.Forbidden, gexc.Unauthorized, auth_exc.RefreshError):
            raise access_denied(STORE, name) from None
        except requests.Timeout:
            raise timed_out(STORE, timeout) from None
        except requests.RequestException as exc:
            raise unreachable(STORE, f"connection failed ({type(exc).__name__})") from None
        except (gexc.GoogleAPIError, auth_exc.TransportError) as exc:
            raise unreachable(STORE, f"it answered {type(exc).__name__}") from None
        finally:
            client.transport.close()  # type: ignore[no-untyped-call]
        try:
            value = bytes(answer.payload.data).decode()
        except UnicodeDecodeError:
            raise not_text(STORE, name) from None
        return pick(STORE, name, value, key)
