"""A real ``stead serve`` for tests that need HTTP over a socket (several clients at once, the
CLI in a subprocess, proxies in front of the server)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stead.demo import create_super_admin, start_server
from tests.support.outbound import LOCAL_ENV
from tests.support.postgres import free_port


@dataclass(frozen=True)
class Served:
    """A running server and the SUPER_ADMIN credentials created for it."""

    url: str
    client_id: str
    client_secret: str
    log: Path


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
