"""A TCP port that takes connections and never answers: any client of it times out."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def silent_url() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a listening socket that is never read: the kernel completes
    the TCP handshake (up to the backlog), and no byte ever comes back."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
