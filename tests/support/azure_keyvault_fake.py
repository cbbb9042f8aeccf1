"""A fake of Azure Key Vault's "Get Secret" and of the Microsoft Entra endpoints a service
principal signs in with, over HTTPS (the Azure SDK refuses to send a bearer token over HTTP).

Shaped by Microsoft's published references: Key Vault REST "Get Secret"
(``GET {vault}/secrets/{name}/{version}?api-version=...`` -> ``{"value", "id", "attributes",
"tags"}``; errors ``{"error": {"code", "message"}}``: 404 ``SecretNotFound``, 403 ``Forbidden``,
401 ``Unauthorized``), Key Vault authentication (a request without a token is answered 401 with
``WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="https://vault.azure.net"``),
and the Microsoft identity platform's OpenID configuration document and client-credentials token
endpoint (``POST /{tenant}/oauth2/v2.0/token``; a wrong secret is 401 ``invalid_client`` with
``AADSTS7000215``).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.support.tls import Certificate, self_signed

KEYVAULT_RESOURCE = "https://vault.azure.net"
LOGIN = "https://login.microsoftonline.com"


@dataclass
class AzureState:
    """What the fake knows: one service principal, the secrets, and who may not read which."""

    tenant_id: str = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    client_id: str = "5f3c2b1a-0d9e-4c8b-a7f6-e5d4c3b2a190"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    secrets: dict[str, str] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)
    tokens: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)


class AzureKeyVaultFake:
    """The fake's HTTPS server: ``url`` is both the vault URL and the Entra authority host;
    ``certificate.cert`` is the CA bundle that trusts it."""

    def __init__(self, certificate: Certificate) -> None:
        self.state = AzureState()
        self.certificate = certificate
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.socket = certificate.server_context().wrap_socket(
            self._server.socket, server_side=True
        )
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        """A new client secret; no secrets, tokens or recorded requests."""
        self.state = AzureState()

    def answer(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        """``(status, headers, JSON body)`` for one request."""
        state = self.state
        path = unquote(urlsplit(target).path)
        state.requests.append((method, path))
        tenant = state.tenant_id
        if method == "GET" and path == f"/{tenant}/v2.0/.well-known/openid-configuration":
            base = f"{self.url}/{tenant}"
            return (
                200,
                {},
                {
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "issuer": f"{base}/v2.0",
                    "token_endpoint_auth_methods_supported": [
                        "client_secret_post",
                        "private_key_jwt",
                        "client_secret_basic",
                    ],
                    "response_types_supported": ["code", "id_token", "code id_token"],
                    "tenant_region_scope": "EU",
                },
            )
        if method == "POST" and path == f"/{tenant}/oauth2/v2.0/token":
            return self._token(parse_qs(body.decode()))
        if method == "GET" and path.startswith("/secrets/"):
            return self._secret(path.removeprefix("/secrets/").strip("/"), headers)
        return 404, {}, {"error": {"code": "NotFound", "message": "Unknown path"}}

    def _token(self, form: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        state = self.state
        given = {k: v[0] for k, v in form.items()}
        if (
            given.get("grant_type") != "client_credentials"
            or given.get("client_id") != state.client_id
            or given.get("client_secret") != state.client_secret
        ):
            return (
                401,
                {},
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided. "
                    "Ensure the secret being sent in the request is the client secret value.",
                    "error_codes": [7000215],
                },
            )
        token = secrets.token_urlsafe(32)
        state.tokens.add(token)
        return (
            200,
            {},
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": token,
            },
        )

    def _secret(self, rest: str, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        state = self.state
        authorization = headers.get("authorization", "")
        if not authorization:
            challenge = (
                f'Bearer authorization="{LOGIN}/{state.tenant_id}", resource="{KEYVAULT_RESOURCE}"'
            )
            return (
                401,
                {"WWW-Authenticate": challenge},
                {
                    "error": {
                        "code": "Unauthorized",
                        "message": "AKV10000: Request is missing a Bearer or PoP token.",
                    }
                },
            )
        if authorization.removeprefix("Bearer ") not in state.tokens:
            return (
                401,
                {},
                {"error": {"code": "Unauthorized", "message": "AKV10032: Invalid issuer."}},
            )
        name = rest.split("/")[0]
        if name.lower() in {n.lower() for n in state.forbidden}:
            return (
                403,
                {},
                {
                    "error": {
                        "code": "Forbidden",
                        "message": "Caller is not authorized to perform action on resource.",
                        "innererror": {"code": "ForbiddenByRbac"},
                    }
                },
            )
        value = next((v for k, v in state.secrets.items() if k.lower() == name.lower()), None)
        if value is None:
            return (
                404,
                {},
                {
                    "error": {
                        "code": "SecretNotFound",
                        "message": f"A secret with (name/id) {name} was not found in this key "
                        "vault. If you recently deleted this secret you may be able to recover "
                        "it using the correct recovery command.",
                    }
                },
            )
        now = int(time.time())
        return (
            200,
            {},
            {
                "value": value,
                "id": f"{self.url}/secrets/{name}/4387e9f3d6e14c459867679a90fd0f79",
                "attributes": {
                    "enabled": True,
                    "created": now,
                    "updated": now,
                    "recoveryLevel": "Recoverable+Purgeable",
                    "recoverableDays": 90,
                },
                "tags": {},
            },
        )


@pytest.fixture(scope="session")
def azure_keyvault_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AzureKeyVaultFake]:
    """The session's Key Vault fake (reset it before use)."""
    fake = AzureKeyVaultFake(self_signed(Path(tmp_path_factory.mktemp("azure-tls"))))
    yield fake
    fake.stop()


def _handler(fake: AzureKeyVaultFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = fake.answer(self.command, self.path, headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve  # noqa: N815 - http.server's naming

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

    return Handler
