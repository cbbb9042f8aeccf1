"""A private PostgreSQL 15 cluster for the test session.

Uses Debian's binaries in ``/usr/lib/postgresql/15/bin``; as root, the server runs as the
``postgres`` user. Set ``STEAD_TEST_POSTGRES_URL`` to use an existing server instead.

The cluster's files are kept in memory (``/dev/shm``) when it has room: each test clones a
database, and creating and removing its few hundred files on a disk's file system cost more
than everything else the clone does (docs/decisions.md, "The test suite").
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_BIN = Path(os.environ.get("STEAD_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
#: Memory-backed file system (tmpfs) for the cluster's files, used when it has
#: :data:`MEMORY_NEEDED` bytes free; else the system's temporary directory.
MEMORY_DIR = Path("/dev/shm")
#: A cluster with its template, the tests' databases of the moment and at most
#: ``max_wal_size`` of WAL stays under 256 MiB; each pytest-xdist worker has its own.
MEMORY_NEEDED = 1 << 30


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cluster_parent() -> Path | None:
    """:data:`MEMORY_DIR` when it exists with :data:`MEMORY_NEEDED` bytes free, else ``None``
    (the system's temporary directory)."""
    try:
        free = shutil.disk_usage(MEMORY_DIR).free
    except OSError:
        return None
    return MEMORY_DIR if free >= MEMORY_NEEDED else None


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """Start a throw-away cluster; yield an admin URL ``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``."""
    base = Path(tempfile.mkdtemp(prefix="stead-pg-", dir=_cluster_parent()))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()
    subprocess.run(
        _as_postgres(
            [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]
        ),
        check=True,
        capture_output=True,
    )
    opts = (
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        " -c max_wal_size=64MB"
    )
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-w",
                "-l",
                str(base / "log"),
                "-o",
                opts,
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)
