"""A fake of GCP Secret Manager's ``projects.secrets.versions.access`` REST method, driven by
the real ``google-cloud-secret-manager`` client (``transport="rest"``, ``api_endpoint`` set).

Shaped by Google's published references: "Method: projects.secrets.versions.access"
(``GET /v1/projects/*/secrets/*/versions/*:access`` -> ``{"name", "payload": {"data"}}``,
``latest`` is an alias of the newest version) and "Cloud APIs errors" (``{"error": {"code",
"message", "status"}}``: 404 ``NOT_FOUND``, 403 ``PERMISSION_DENIED``, 401 ``UNAUTHENTICATED``,
400 ``FAILED_PRECONDITION`` for a disabled version).

Callers authenticate as a service account: the client library sends a self-signed RS256 JWT
(its key id in ``kid``), which the fake checks against the public keys of the service accounts
it issued (:meth:`GcpSecretManagerFake.service_account_file`).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PROJECT = "stead-test"
PROJECT_NUMBER = "123456789012"
_ACCESS = re.compile(r"/v1/projects/([^/]+)/secrets/([^/]+)/versions/([^/:]+):access")


@dataclass
class FakeSecret:
    """A secret's versions (oldest first; ``None`` marks a disabled version)."""

    versions: list[bytes | None]
    denied: bool = False


@dataclass
class GcpState:
    """Secrets per id, public keys of the service accounts by key id, recorded requests."""

    secrets: dict[str, FakeSecret] = field(default_factory=dict)
    keys: dict[str, Any] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)


def _error(status: int, code: str, message: str) -> tuple[int, Any]:
    return status, {"error": {"code": status, "message": message, "status": code}}


class GcpSecretManagerFake:
    """The fake's HTTP server on 127.0.0.1; ``url`` is the ``api_endpoint``."""

    def __init__(self) -> None:
        self.state = GcpState()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        """No secrets or recorded requests (service accounts stay trusted)."""
        self.state = GcpState(keys=self.state.keys)

    def add_secret(self, secret_id: str, *versions: bytes | None, denied: bool = False) -> None:
        """Create ``secret_id`` with ``versions`` (``None``: a disabled version); ``denied``
        refuses every caller the ``secretmanager.versions.access`` permission on it."""
        self.state.secrets[secret_id] = FakeSecret(list(versions), denied)

    def service_account_file(self, directory: Path, *, trusted: bool = True) -> Path:
        """Write a service-account key file (a fresh RSA key) into ``directory``; the fake
        accepts its JWTs only when ``trusted``."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        if trusted:
            self.state.keys[key_id] = key.public_key()
        email = f"stead@{PROJECT}.iam.gserviceaccount.com"
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        path = directory / f"service-account-{key_id[:8]}.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": PROJECT,
                    "private_key_id": key_id,
                    "private_key": pem,
                    "client_email": email,
                    "client_id": "104857600000000000001",
                    "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                    "token_uri": f"{self.url}/token",
                    "universe_domain": "googleapis.com",
                }
            )
        )
        return path

    def _authenticated(self, authorization: str) -> bool:
        token = authorization.removeprefix("Bearer ")
        try:
            key = self.state.keys.get(jwt.get_unverified_header(token).get("kid", ""))
            if key is None:
                return False
            jwt.decode(token, key, algorithms=["RS256"], options={"verify_aud": False})
        except jwt.PyJWTError:
            return False
        return True

    def answer(self, target: str, authorization: str) -> tuple[int, Any]:
        """``(status, JSON body)`` for ``GET target``."""
        path = unquote(urlsplit(target).path)
        self.state.requests.append(path)
        if not self._authenticated(authorization):
            return _error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            )
        match = _ACCESS.fullmatch(path)
        if match is None:
            return _error(404, "NOT_FOUND", "Requested entity was not found.")
        project, secret_id, version = match.groups()
        resource = f"projects/{project}/secrets/{secret_id}"
        secret = self.state.secrets.get(secret_id) if project == PROJECT else None
        if secret is not None and secret.denied:
            return _error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'secretmanager.versions.access' denied for resource "
                f"'{resource}/versions/{version}' (or it may not exist).",
            )
        if secret is None or not secret.versions:
            return _error(404, "NOT_FOUND", f"Secret [{resource}] not found or has no versions.")
        number = len(secret.versions) if version == "latest" else int(version)
        if not 1 <= number <= len(secret.versions):
            return _error(
                404, "NOT_FOUND", f"Secret Version [{resource}/versions/{version}] not found."
            )
        data = secret.versions[number - 1]
        if data is None:
            return _error(
                400,
                "FAILED_PRECONDITION",
                f"Secret Version [{resource}/versions/{number}] is in DISABLED state.",
            )
        return 200, {
            "name": f"projects/{PROJECT_NUMBER}/secrets/{secret_id}/versions/{number}",
            "payload": {"data": base64.b64encode(data).decode()},
        }


@pytest.fixture(scope="session")
def gcp_secret_manager_session() -> Iterator[GcpSecretManagerFake]:
    """The session's Secret Manager fake (reset it before use)."""
    fake = GcpSecretManagerFake()
    yield fake
    fake.stop()


def _handler(fake: GcpSecretManagerFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            status, payload = fake.answer(self.path, self.headers.get("Authorization", ""))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

    return Handler
