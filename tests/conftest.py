"""Shared fixtures: every test that takes ``db_url`` runs on SQLite and on PostgreSQL.

Each test gets a freshly migrated database: SQLite copies a migrated template file; PostgreSQL
clones a migrated template database (``CREATE DATABASE ... TEMPLATE``). Both go to the same
file or database name test after test, so that the apps of a worker share one engine per
backend (``engines``); the database is removed when its test ends. Under pytest-xdist every
worker is a session of its own: its own PostgreSQL cluster (or, with ``STEAD_TEST_POSTGRES_URL``,
its own template and databases, named after its pid), test servers and temp directories.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from stead.app import create_app
from stead.db import make_engine, sqlite_files
from stead.identity import service as identity_service
from stead.migrations import upgrade
from stead.settings import Settings
from tests.support.factories import auth
from tests.support.outbound import LOCAL
from tests.support.postgres import postgres_cluster

#: argon2id at its lowest cost (1 pass over 8 KiB, one lane) with production's salt and tag
#: sizes: hashing and verifying take microseconds instead of ~0.2 s each. A hash carries its
#: parameters, so servers run as subprocesses (production cost) verify these hashes and the
#: suite's own hashes interoperate with theirs.
TEST_HASH_PARAMETERS = dataclasses.replace(
    identity_service.HASH_PARAMETERS, time_cost=1, memory_cost=8, parallelism=1
)


@pytest.fixture(scope="session", autouse=True)
def cheap_hashing() -> Iterator[None]:
    """Hash secrets with :data:`TEST_HASH_PARAMETERS` in this process for the whole session
    (production keeps ``HASH_PARAMETERS``; ``tests/test_flow.py`` checks a real server's hash)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            identity_service, "_hasher", PasswordHasher.from_parameters(TEST_HASH_PARAMETERS)
        )
        yield


def pytest_configure(config: pytest.Config) -> None:
    """Let Ctrl-C (SIGINT) reach the commands the tests start, as it does in a terminal.

    A shell without job control starts a background command (``make test &``) with SIGINT
    ignored, and an ignored signal stays ignored in every child, across ``exec``: the tests
    that interrupt ``stead apply`` or ``stead demo --serve`` would see them run on. A handled
    signal goes back to its default in the child (POSIX ``exec``), so handling it here is
    enough."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``postgresql`` every test that runs on PostgreSQL through ``db_url`` (``make
    test-fast`` deselects them), and move the tests marked ``slow`` to the front, so that
    pytest-xdist starts the longest ones first instead of leaving one worker busy with them at
    the end while the others wait."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("db_url") == "postgresql":
            item.add_marker(pytest.mark.postgresql)
    # A stable sort: every worker collects the same order, as xdist requires.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file to copy for each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """Admin URL of the session's PostgreSQL (``STEAD_TEST_POSTGRES_URL`` or a private cluster)."""
    given = os.environ.get("STEAD_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    with postgres_cluster() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str) -> str:
    """Name of a migrated template database."""
    name = f"stead_template_{os.getpid()}"
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    upgrade(postgres_admin_url.rsplit("/", 1)[0] + f"/{name}")
    return name


@pytest.fixture(scope="session")
def engines() -> dict[str, Engine]:
    """The worker's engine for each database URL :func:`db_url` gives, made on first use and
    disposed of after each test.

    ``db_url`` gives the same URL to test after test (a fixed file or database name per
    worker, made anew each time), so the apps of all those tests share one engine, and with it
    the statements SQLAlchemy has compiled: it keys its compiled cache on the engine's dialect,
    and a new engine per test compiled every statement again (docs/decisions.md, "The test
    suite")."""
    return {}


@contextmanager
def _sqlite_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """The worker's SQLite file, copied from the template; removed afterwards."""
    factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
    path = factory.getbasetemp() / "stead.db"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    try:
        yield f"sqlite:///{path}"
    finally:
        for file in sqlite_files(path):
            file.unlink(missing_ok=True)


@contextmanager
def _postgres_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """The worker's PostgreSQL database, cloned from the template; dropped afterwards."""
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    template: str = request.getfixturevalue("postgres_template")
    name = f"stead_test_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, engines: dict[str, Engine]) -> Iterator[str]:
    """A fresh, migrated database URL; the test runs once per backend. The URL is the same
    for every test of a worker (see :func:`engines`); the database behind it is new."""
    database = _sqlite_database if request.param == "sqlite" else _postgres_database
    with database(request) as url:
        if url not in engines:
            engines[url] = make_engine(url)
        try:
            yield url
        finally:
            engines[url].dispose()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Settings for an app on ``db_url`` with its own data directory; loopback destinations
    allowed (the test servers)."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        github_api_url="http://127.0.0.1:9/unused",
        **LOCAL,
    )


@pytest.fixture
def http(settings: Settings, engines: dict[str, Engine]) -> Iterator[TestClient]:
    """An in-process HTTP client for the app (use ``server`` fixtures for real HTTP), on the
    worker's engine for ``settings.database_url`` when there is one (:func:`engines`)."""
    app = create_app(settings, engine=engines.get(settings.database_url))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def session_factory(http: TestClient) -> sessionmaker[Session]:
    """Sessions on the app's own database (for arranging and checking state)."""
    return http.app.state.sessionmaker  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def admin(http: TestClient, session_factory: sessionmaker[Session]) -> dict[str, str]:
    """Authorization headers of a SUPER_ADMIN API client."""
    return auth(http, session_factory, "SUPER_ADMIN")
