"""A Snowflake test server: fakesnow's HTTP server behind a login that
really checks credentials, run as ``python -m tests.support.snowflake_server PORT``.

fakesnow accepts any login. The wrapper answers ``POST /session/v1/login-request`` itself unless
the credentials are right, as Snowflake does (HTTP 200, ``success: false``, Snowflake's code):

* key-pair (``AUTHENTICATOR: SNOWFLAKE_JWT``): the RS256 JWT's ``sub`` must be
  ``ACCOUNT.USER`` of a registered user, its ``iss`` ``ACCOUNT.USER.SHA256:<fingerprint>`` of
  one of the user's registered public keys, and its signature, ``iat`` and ``exp`` must verify
  with that key; else 390144 ``JWT token is invalid.`` (Snowflake's "Key-pair authentication"
  and "Key pair authentication: troubleshooting" pages);
* password: else 390100 ``Incorrect username or password was specified.``;
* a ``roleName`` the user was not granted: 390189.

Users are registered over HTTP: ``POST /stead-test/users`` ``{"account", "user",
"password"?, "publicKeys"?: [PEM], "roles"?: [...]}``; ``POST /stead-test/reset`` forgets them;
``GET /stead-test/logins`` lists the accepted logins (account, user, role, warehouse, database,
schema) so tests can see what a client applied.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from starlette.types import Message, Receive, Scope, Send

from stead.tls import client_context
from tests.support.postgres import free_port
from tests.support.processes import server_process

PREFIX = "/stead-test"


@dataclass
class User:
    """A registered user: password and/or public keys (by fingerprint), granted roles."""

    password: str | None
    keys: dict[str, Any]
    roles: set[str]


@dataclass
class Registry:
    users: dict[tuple[str, str], User] = field(default_factory=dict)
    logins: list[dict[str, Any]] = field(default_factory=list)


def fingerprint(public_key: Any) -> str:
    """Snowflake's ``RSA_PUBLIC_KEY_FP``: ``SHA256:`` + base64(SHA-256 of the DER public key)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def _account(value: str) -> str:
    """The account part of an identifier as the JWT carries it (upper case, before any '.')."""
    return value.partition(".")[0].upper()


def _failure(code: str, message: str) -> bytes:
    return json.dumps(
        {"data": None, "code": code, "message": message, "success": False, "headers": None}
    ).encode()


JWT_INVALID = ("390144", "JWT token is invalid.")
WRONG_PASSWORD = ("390100", "Incorrect username or password was specified.")


def check_login(registry: Registry, data: dict[str, Any], query: dict[str, str]) -> bytes | None:
    """The failure answer for a login request, or None when the credentials are right."""
    account = _account(str(data.get("ACCOUNT_NAME", "")))
    user_name = str(data.get("LOGIN_NAME", "")).upper()
    if data.get("AUTHENTICATOR") == "SNOWFLAKE_JWT":
        code, message = JWT_INVALID
        token = str(data.get("TOKEN", ""))
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            subject_account, _, subject_user = str(claims["sub"]).partition(".")
            user = registry.users.get((subject_account, subject_user))
            issuer = str(claims["iss"])
            key = user.keys.get(issuer.removeprefix(f"{claims['sub']}.")) if user else None
            if key is None or subject_account != account or subject_user != user_name:
                return _failure(code, f"{message} [{uuid.uuid4()}]")
            jwt.decode(token, key, algorithms=["RS256"], options={"require": ["iat", "exp"]})
        except (jwt.PyJWTError, KeyError, ValueError):
            return _failure(code, f"{message} [{uuid.uuid4()}]")
    else:
        user = registry.users.get((account, user_name))
        if user is None or user.password is None or user.password != data.get("PASSWORD"):
            return _failure(*WRONG_PASSWORD)
    assert user is not None
    role = query.get("roleName")
    if role and role.upper() not in user.roles:
        return _failure(
            "390189",
            f"Role '{role.upper()}' specified in the connect string does not exist or not "
            "authorized. Contact your local system administrator, or attempt to login with "
            "another role, e.g. PUBLIC.",
        )
    registry.logins.append(
        {
            "account": account,
            "user": user_name,
            "role": query.get("roleName"),
            "warehouse": query.get("warehouse"),
            "database": query.get("databaseName"),
            "schema": query.get("schemaName"),
        }
    )
    return None


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class CheckingLogin:
    """ASGI app: the checks above in front of fakesnow's app, and the registration routes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.registry = Registry()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith(PREFIX):
            await self._admin(scope, receive, send)
            return
        if path != "/session/v1/login-request":
            await self.inner(scope, receive, send)
            return
        raw = await _body(receive)
        headers = dict(scope["headers"])
        text = gzip.decompress(raw) if headers.get(b"content-encoding") == b"gzip" else raw
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        refusal = check_login(self.registry, json.loads(text)["data"], query)
        if refusal is not None:
            await _answer(send, 200, refusal)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        await self.inner(scope, replay, send)

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"].removeprefix(PREFIX)
        if scope["method"] == "GET" and path == "/logins":
            await _answer(send, 200, json.dumps(self.registry.logins).encode())
        elif scope["method"] == "POST" and path == "/users":
            spec = json.loads(await _body(receive))
            keys = {}
            for pem in spec.get("publicKeys", []):
                key = serialization.load_pem_public_key(pem.encode())
                keys[fingerprint(key)] = key
            self.registry.users[(_account(spec["account"]), spec["user"].upper())] = User(
                password=spec.get("password"),
                keys=keys,
                roles={r.upper() for r in spec.get("roles", [])},
            )
            await _answer(send, 201, b"{}")
        elif scope["method"] == "POST" and path == "/reset":
            self.registry.users.clear()
            self.registry.logins.clear()
            await _answer(send, 200, b"{}")
        else:
            await _answer(send, 200 if path == "/health" else 404, b"{}")


@dataclass(frozen=True)
class SnowflakeServer:
    """A running test server: ``host``/``port`` for the connector (protocol ``http``)."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        """Forget every user and login."""
        httpx.post(f"{self.url}{PREFIX}/reset", verify=client_context()).raise_for_status()

    def add_user(
        self,
        account: str,
        user: str,
        *,
        password: str | None = None,
        public_keys: tuple[str, ...] = (),
        roles: tuple[str, ...] = (),
    ) -> None:
        """Register ``user`` of ``account`` with a password and/or public keys (PEM)."""
        body = {
            "account": account,
            "user": user,
            "password": password,
            "publicKeys": list(public_keys),
            "roles": list(roles),
        }
        httpx.post(
            f"{self.url}{PREFIX}/users", json=body, verify=client_context()
        ).raise_for_status()

    def logins(self) -> list[dict[str, Any]]:
        """The logins accepted so far (see the module docstring)."""
        return list(httpx.get(f"{self.url}{PREFIX}/logins", verify=client_context()).json())


@pytest.fixture(scope="session")
def snowflake_server_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SnowflakeServer]:
    """The session's Snowflake test server (reset it before use)."""
    port = free_port()
    log: Path = tmp_path_factory.mktemp("snowflake") / "server.log"
    with server_process(
        [sys.executable, "-m", "tests.support.snowflake_server", str(port)],
        ready_url=f"http://127.0.0.1:{port}{PREFIX}/health",
        log=log,
    ):
        yield SnowflakeServer("127.0.0.1", port)


def main() -> None:
    """Serve on 127.0.0.1:<argv[1]>."""
    import uvicorn
    from fakesnow.server import app as fakesnow_app

    app = CheckingLogin(fakesnow_app)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")


if __name__ == "__main__":
    main()
