"""Amazon Redshift's wire for tests: a private PostgreSQL behind a small TCP shim, for
``redshift-connector`` 2.2.0.

PostgreSQL: a cluster of its own whose ``pg_hba.conf`` trusts ``postgres`` and asks every other
role for an ``md5`` password (the driver mis-parses SCRAM's mechanism list), with a test role
whose password is stored as md5.

The shim, per client connection: answers an SSL request with ``N`` (no SSL here: a client that
requires SSL gets "Server refuses SSL"); keeps only the startup parameters PostgreSQL knows (the
driver sends Redshift-only ones such as ``client_protocol_version`` and ``driver_version``,
which PostgreSQL refuses with FATAL 42704); then relays bytes both ways, rewriting the server's
``server_version`` parameter to its number (Debian's ``15.18 (Debian 15.18-1.pgdg120+1)``
fails the driver's ``packaging.version`` parse).
"""

from __future__ import annotations

import re
import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.support.postgres import postgres_cluster

SSL_REQUEST = 80877103
PROTOCOL_3 = 196608
#: Startup parameters PostgreSQL accepts; the driver's others are Redshift's own.
KEPT_PARAMETERS = {
    "user",
    "database",
    "options",
    "application_name",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "extra_float_digits",
}
ROLE = "redshift_tester"
DATABASE = "dev"


def read_exact(sock: socket.socket, count: int) -> bytes:
    """Exactly ``count`` bytes from ``sock``; ``ConnectionError`` if it closes first."""
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _startup(client: socket.socket) -> bytes | None:
    """Read the client's startup (after answering any SSL request); return the startup message
    with only :data:`KEPT_PARAMETERS`, or None when the client gave up."""
    while True:
        length, code = struct.unpack("!ii", read_exact(client, 8))
        rest = read_exact(client, length - 8)
        if code == SSL_REQUEST:
            client.sendall(b"N")
            continue
        if code != PROTOCOL_3:
            return None
        parts = rest.split(b"\x00")
        pairs = [(parts[i], parts[i + 1]) for i in range(0, len(parts) - 2, 2) if parts[i]]
        kept = b"".join(
            k + b"\x00" + v + b"\x00" for k, v in pairs if k.decode() in KEPT_PARAMETERS
        )
        body = struct.pack("!i", PROTOCOL_3) + kept + b"\x00"
        return struct.pack("!i", len(body) + 4) + body


def _rewrite(message_type: bytes, payload: bytes) -> bytes:
    """A ParameterStatus ``server_version`` keeps only its leading version number."""
    if message_type == b"S" and payload.startswith(b"server_version\x00"):
        value = payload.split(b"\x00")[1].decode()
        match = re.match(r"[0-9]+(\.[0-9]+)*", value)
        payload = b"server_version\x00" + (match.group(0) if match else value).encode() + b"\x00"
    return message_type + struct.pack("!i", len(payload) + 4) + payload


def _pump_client(client: socket.socket, server: socket.socket) -> None:
    try:
        while data := client.recv(65536):
            server.sendall(data)
    except OSError:
        pass
    finally:
        server.close()


def _pump_server(server: socket.socket, client: socket.socket) -> None:
    try:
        while True:
            header = read_exact(server, 5)
            length = struct.unpack("!i", header[1:])[0]
            client.sendall(_rewrite(header[:1], read_exact(server, length - 4)))
    except (OSError, ConnectionError):
        pass
    finally:
        client.close()


class _Handler(socketserver.BaseRequestHandler):
    server: _Shim

    def handle(self) -> None:
        client: socket.socket = self.request
        try:
            startup = _startup(client)
        except (OSError, ConnectionError):
            return
        if startup is None:
            return
        upstream = socket.create_connection(("127.0.0.1", self.server.pg_port))
        upstream.sendall(startup)
        pump = threading.Thread(target=_pump_client, args=(client, upstream), daemon=True)
        pump.start()
        _pump_server(upstream, client)
        pump.join(timeout=5)


class _Shim(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, pg_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.pg_port = pg_port


@dataclass(frozen=True)
class RedshiftServer:
    """The shim's address, the test role's credentials, and an admin URL of the cluster."""

    host: str
    port: int
    user: str
    password: str
    database: str
    admin_url: str


def _configure(admin_url: str, password: str) -> None:
    """md5 for every role but ``postgres`` (an unknown role too); the test role and its
    database."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        hba = Path(str(conn.execute(text("SHOW hba_file")).scalar()))
        hba.write_text(
            "local all all trust\n"
            "host all postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 md5\n"
        )
        # Server-wide, so that PostgreSQL's mock challenge for an unknown role is md5 as well.
        conn.execute(text("ALTER SYSTEM SET password_encryption = 'md5'"))
        conn.execute(text("SET password_encryption = 'md5'"))
        conn.execute(text(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'"))
        conn.execute(text(f"CREATE DATABASE {DATABASE} OWNER {ROLE}"))
        conn.execute(text("SELECT pg_reload_conf()"))
    admin.dispose()


@pytest.fixture(scope="session")
def redshift_server_session() -> Iterator[RedshiftServer]:
    """A PostgreSQL cluster of its own behind the shim, with role ``redshift_tester`` (a
    random password) owning database ``dev``."""
    import secrets

    password = "rs-" + secrets.token_hex(12)
    with postgres_cluster() as admin_url:
        _configure(admin_url, password)
        pg_port = int(admin_url.rsplit(":", 1)[1].split("/")[0])
        shim = _Shim(pg_port)
        thread = threading.Thread(target=shim.serve_forever, daemon=True)
        thread.start()
        try:
            host, port = shim.server_address[:2]
            yield RedshiftServer(str(host), int(port), ROLE, password, DATABASE, admin_url)
        finally:
            shim.shutdown()
            shim.server_close()


def connect_kwargs(server: RedshiftServer, **changes: Any) -> dict[str, Any]:
    """``redshift_connector.connect`` arguments for the test role (SSL off)."""
    return {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": server.password,
        "database": server.database,
        "ssl": False,
        **changes,
    }
