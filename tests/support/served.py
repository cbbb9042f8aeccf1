"""Stead over HTTP on a socket for tests that need more than the in-process test client (several
clients at once, the CLI or another program as a client, proxies in front of the server).

- :func:`serve_app` and :func:`serve_here`: the app served by uvicorn in a thread of the test's
  process. Starting one costs milliseconds: the app is already imported.
- :func:`serve`: a ``stead serve`` process, for tests of what only a process has (its command
  line, signals, its start-up checks, limits of its own).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from stead.app import create_app
from stead.demo import create_super_admin, start_server
from stead.pipeline.server import uvicorn_options
from stead.settings import Settings
from stead.tls import client_context
from tests.support.outbound import LOCAL_ENV
from tests.support.postgres import free_port


@dataclass(frozen=True)
class Served:
    """A running server and the SUPER_ADMIN credentials created for it; ``log`` holds what it
    logged."""

    url: str
    client_id: str
    client_secret: str
    log: Path

    def headers(self) -> dict[str, str]:
        """``Authorization`` headers with a new bearer token of the SUPER_ADMIN client."""
        return bearer_headers(self.url, self.client_id, self.client_secret)


def bearer_headers(url: str, client_id: str, client_secret: str) -> dict[str, str]:
    """``Authorization`` headers with a new bearer token of API client ``client_id`` from the
    server at ``url`` (``POST /oauth/dpc/token``, the client credentials grant).

    Raises:
        httpx.HTTPStatusError: the server refused the credentials.
    """
    resp = httpx.post(
        f"{url}/oauth/dpc/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        },
        timeout=30,
        verify=client_context(),
    )
    resp.raise_for_status()
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


@contextmanager
def serve_app(
    app: FastAPI, port: int | None = None, *, listener: socket.socket | None = None
) -> Iterator[str]:
    """Serve ``app`` with uvicorn, as ``stead serve`` configures it (the app's settings), on
    127.0.0.1 in a thread of this process, on ``port`` (default: a free one) or on the
    listening socket ``listener``, which stays open after (uvicorn closes a copy of it); yield
    its base URL (``http://127.0.0.1:<port>``) once it accepts connections, stop it after.

    Raises:
        RuntimeError: the server did not start within 20 s.
    """
    if listener is not None:
        port = listener.getsockname()[1]
    port = port or free_port()
    options = uvicorn_options(app.state.settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, **options
        )
    )
    sockets = None if listener is None else [listener.dup()]
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the in-thread server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@contextmanager
def serve_here(settings: Settings) -> Iterator[Served]:
    """Create a SUPER_ADMIN client on ``settings.database_url`` (migrated), then serve the app on
    ``settings`` with :func:`serve_app`. Every log record of this process meanwhile (the server's
    and its clients', rendered as the app renders them) is also written to
    ``<data_dir>/server.log``, so that a test can search it for a canary."""
    client_id, secret = create_super_admin(settings.database_url)
    app = create_app(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log = settings.data_dir / "server.log"
    handler = logging.FileHandler(log, encoding="utf-8")
    root = logging.getLogger()
    if root.handlers:  # the app's renderer (stead.logs.configure_logging)
        handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(handler)
    try:
        with serve_app(app) as url:
            yield Served(url, client_id, secret, log)
    finally:
        root.removeHandler(handler)
        handler.close()


@contextmanager
def serve(db_url: str, data_dir: Path, env: Mapping[str, str] | None = None) -> Iterator[Served]:
    """Migrate ``db_url``, create a SUPER_ADMIN client, run ``stead serve`` on a free port with
    loopback destinations allowed (the test servers) and the ``STEAD_*`` settings of ``env``."""
    client_id, secret = create_super_admin(db_url)
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = start_server(data_dir, port, database_url=db_url, env={**LOCAL_ENV, **(env or {})})
    try:
        yield Served(f"http://127.0.0.1:{port}", client_id, secret, data_dir / "server.log")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
