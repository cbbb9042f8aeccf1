"""Outbound-policy settings for tests whose servers run on this machine, and a redirecting
HTTP server.

Stead refuses loopback destinations, non-vendor hosts, plain-HTTP and ``file://`` git by default;
tests that talk to their own servers allow them explicitly, as an admin of a lab installation
would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

LOCAL: dict[str, Any] = {
    "outbound_allowed_networks": "127.0.0.0/8,::1",
    "outbound_warehouse_hosts": "127.0.0.1,localhost",
    "outbound_git_hosts": "127.0.0.1,localhost",
    "outbound_git_allow_http": True,
    "outbound_git_allow_file": True,
}
"""``Settings(**LOCAL)``: loopback addresses, the names 127.0.0.1 and localhost for warehouses
and git, and git over ``http://`` and ``file://``."""

LOCAL_ENV = {
    f"STEAD_{name.upper()}": str(value).lower() if isinstance(value, bool) else value
    for name, value in LOCAL.items()
}
"""The same as ``STEAD_*`` environment variables, for a ``stead serve`` process."""


class Redirector(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that answers every request with ``307`` to ``target``."""

    target = "http://169.254.169.254/latest/meta-data/"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.server_port}"


class _Redirect(BaseHTTPRequestHandler):
    def _redirect(self) -> None:
        server: Any = self.server
        self.send_response(307)
        self.send_header("Location", server.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = _redirect  # noqa: N815 - http.server's names

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirector() -> Iterator[Redirector]:
    """A :class:`Redirector` whose ``target`` a test may change."""
    server = Redirector(("127.0.0.1", 0), _Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
