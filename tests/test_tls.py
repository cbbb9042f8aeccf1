"""The shared TLS context of Stead's HTTPS clients (``stead.tls``): it verifies certificates as
httpx's own default does, ``SSL_CERT_FILE`` included, against a real TLS server."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stead.tls import client_context
from tests.support.tls import Certificate, self_signed

#: Fetches the URL of argv[1] through a client with the shared context; prints the status, or
#: the error's class name.
FETCH = """
import sys, httpx
from stead.tls import client_context
try:
    print(httpx.get(sys.argv[1], verify=client_context()).status_code)
except httpx.ConnectError as exc:
    print(type(exc).__name__, "CERTIFICATE_VERIFY_FAILED" in str(exc))
"""


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    return self_signed(tmp_path)


@pytest.fixture
def https_url(certificate: Certificate) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 with ``certificate`` (a CA of no bundle) answering 200."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    server.socket = certificate.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _fetch(url: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    done = subprocess.run(
        [sys.executable, "-c", FETCH, url],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_one_verifying_context_per_process() -> None:
    context = client_context()
    assert context is client_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_a_certificate_of_no_bundle_is_refused(https_url: str) -> None:
    assert _fetch(https_url) == "ConnectError True"


def test_ssl_cert_file_is_the_bundle_when_set(https_url: str, certificate: Certificate) -> None:
    assert _fetch(https_url, SSL_CERT_FILE=str(certificate.cert)) == "200"
