"""Benchmark: store and resolve throughput of hosted secrets (operations per second).

For each backend (SQLite in a temp directory, PostgreSQL in a private cluster) it measures, with
the service functions the API calls (no HTTP in the way):

* store: one write transaction per secret, as ``POST .../secrets`` does it (name check, a fresh
  data key, two AES-256-GCM encryptions, the secret and version rows, an audit row);
* new version: one write transaction per ``PUT .../secrets/{name}``;
* resolve: one read transaction per ``read_value`` (lookup by name, unwrap, decrypt), from one
  thread and from four;
* rotate: re-wrapping every version under a new master key, in one transaction (versions/s);

and, as the ceiling, the envelope encryption alone in memory.

Run from the repository root: ``.venv/bin/python bench/secrets_bench.py [--secrets 1000]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from sqlalchemy import select  # noqa: E402

from stead.db import make_engine, make_sessionmaker, session_scope  # noqa: E402
from stead.identity.actor import Actor  # noqa: E402
from stead.identity.models import Account  # noqa: E402
from stead.migrations import upgrade  # noqa: E402
from stead.projects import service as projects  # noqa: E402
from stead.projects.schemas import ProjectCreate  # noqa: E402
from stead.secrets import service, store  # noqa: E402
from stead.secrets.store import Keyring, attach_keyring, read_value, rewrap_all  # noqa: E402
from tests.support.postgres import postgres_cluster  # noqa: E402

VALUE = "correct horse battery staple, 0123456789abcdef"


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh database URL for ``backend``."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'stead.db'}"
        return
    with postgres_cluster() as url:
        yield url


def rate(count: int, run: Callable[[], None]) -> float:
    """Operations per second of ``run`` doing ``count`` operations."""
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def in_memory(count: int) -> float:
    """Envelope encryption alone: a data key, the value and the wrapped key, per operation."""
    master = AESGCM(AESGCM.generate_key(bit_length=256))

    def run() -> None:
        for _ in range(count):
            data_key = AESGCM.generate_key(bit_length=256)
            AESGCM(data_key).encrypt(os.urandom(12), VALUE.encode(), b"context")
            master.encrypt(os.urandom(12), data_key, b"context")

    return rate(count, run)


def measure(url: str, count: int) -> dict[str, float]:
    """The figures for one database."""
    upgrade(url)
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    master = AESGCM.generate_key(bit_length=256)
    attach_keyring(factory, Keyring([master]))
    with session_scope(factory, write=True) as session:
        account = session.scalars(select(Account)).one()
        actor = Actor(
            type="api_client", id="bench", name="bench", role="SUPER_ADMIN", account_id=account.id
        )
        body = {"name": "bench", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"}
        project = projects.create(session, actor=actor, data=ProjectCreate.model_validate(body))
    names = [f"secret-{n}" for n in range(count)]

    def store_all() -> None:
        for name in names:
            with session_scope(factory, write=True) as session:
                service.add_hosted(
                    session,
                    actor=actor,
                    project=session.merge(project),
                    name=name,
                    secret_type="PASSWORD",
                    value=VALUE,
                )

    def new_versions() -> None:
        for name in names:
            with session_scope(factory, write=True) as session:
                secret = store.find(session, project_id=project.id, name=name, for_update=True)
                assert secret is not None
                service.replace_value(
                    session, actor=actor, secret=secret, secret_type="PASSWORD", value=VALUE
                )

    def resolve(subset: list[str]) -> None:
        for name in subset:
            with factory() as session:
                assert read_value(session, project_id=project.id, name=name) == VALUE

    def resolve_threads() -> None:
        threads = [threading.Thread(target=resolve, args=(names[n::4],)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def rotate() -> None:
        rotated = Keyring([AESGCM.generate_key(bit_length=256), master])
        with session_scope(factory, write=True) as session:
            assert rewrap_all(session, rotated) == count * 2

    figures = {
        "store": rate(count, store_all),
        "new version": rate(count, new_versions),
        "resolve, 1 thread": rate(count, lambda: resolve(names)),
        "resolve, 4 threads": rate(count, resolve_threads),
        "rotate (versions)": rate(count * 2, rotate),
    }
    engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=1000, help="secrets per backend")
    args = parser.parse_args()
    print(f"envelope encryption in memory: {in_memory(args.secrets * 10):,.0f} ops/s")
    for backend in ("sqlite", "postgresql"):
        with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp)) as url:
            figures = measure(url, args.secrets)
        for label, value in figures.items():
            print(f"{backend:10} {label:20} {value:10,.0f} ops/s")


if __name__ == "__main__":
    main()
