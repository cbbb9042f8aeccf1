"""An attacker's PostgreSQL-wire listener on 127.0.0.1: it refuses SSL, asks every client for
its password in clear text (``AuthenticationCleartextPassword``, PostgreSQL protocol 3,
"Message Formats"), keeps what it receives, and answers with an ``ErrorResponse`` whose message
repeats the password, as a hostile server may."""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections.abc import Iterator

import pytest

from tests.support.redshift_shim import SSL_REQUEST, read_exact


class _Handler(socketserver.BaseRequestHandler):
    server: CleartextListener

    def handle(self) -> None:
        sock: socket.socket = self.request
        try:
            while True:
                length, code = struct.unpack("!ii", read_exact(sock, 8))
                read_exact(sock, length - 8)
                if code != SSL_REQUEST:
                    break
                sock.sendall(b"N")
            sock.sendall(b"R" + struct.pack("!ii", 8, 3))  # send me your password in clear
            kind = read_exact(sock, 1)
            length = struct.unpack("!i", read_exact(sock, 4))[0]
            body = read_exact(sock, length - 4)
            if kind == b"p":
                password = body.rstrip(b"\x00").decode(errors="replace")
                with self.server.lock:
                    self.server.received.append(password)
                fields = [
                    b"SFATAL",
                    b"VFATAL",
                    b"C28P01",
                    f"Mpassword authentication failed: got {password!r}".encode(),
                ]
                payload = b"\x00".join(fields) + b"\x00\x00"
                sock.sendall(b"E" + struct.pack("!i", len(payload) + 4) + payload)
        except (OSError, ConnectionError, struct.error):
            pass


class CleartextListener(socketserver.ThreadingTCPServer):
    """The listener; ``received`` holds every password a client sent it."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.received: list[str] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@pytest.fixture
def cleartext_listener() -> Iterator[CleartextListener]:
    """A running :class:`CleartextListener`, shut down after the test."""
    server = CleartextListener()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
