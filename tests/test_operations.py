"""Running Stead: keys checked against the database, upgrades, ``stead --version``
(docs/operations.md)."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from pydantic import SecretStr
from pydantic_settings import SettingsError
from sqlalchemy import create_engine, select, text

from stead import __version__
from stead.app import create_app
from stead.db import make_engine, make_sessionmaker
from stead.identity.keys import SigningKeyError
from stead.keycheck import KeyCheckError, verify_keys
from stead.migrations import HERE, head, upgrade
from stead.models import Base
from stead.secrets.models import KeyCheck
from stead.secrets.store import MasterKeyError, attach_keyring, load_keyring, read_value
from stead.settings import Settings
from tests.support.factories import assert_problem, auth, example
from tests.support.postgres import free_port

#: The release whose schema upgrades are tested from (tag v0.1.0) and its last revision.
PREVIOUS_RELEASE_HEAD = "20261206_scopes"
#: Migrations shipped in a release, with their SHA-256: a released migration is never edited
#: (installed databases already ran it); a change of schema is a new revision.
RELEASED_MIGRATIONS = {
    "20261129_initial_schema.py": (
        "69eacadb043922fc50b15e79a22cd69da2ac77dda3b2a19a538c82bd82c19e8c"
    ),
    "20261206_dpc.py": "7869a9081ce43c639e411dde841152984e01b695b53ad84c9fb5b9fbc5e7c52c",
    "20261206_idsec.py": "7a6f08db39491c814977ca7be9fcbee92b8ae2f64b26ddaf6661e8683aac395a",
    "20261206_scopes.py": "952c2f10b46e28f5aaff1751de125f0461a803785db6aefc0162b0281e39017b",
}

STEAD = [sys.executable, "-m", "stead.cli.main"]


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """``stead ARGS`` with only the ``STEAD_*`` variables given."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
    environ.update(env)
    return subprocess.run([*STEAD, *args], env=environ, capture_output=True, text=True, timeout=120)


def _settings(data_dir: Path, db_url: str, **changes: object) -> Settings:
    return Settings(data_dir=data_dir, database_url=db_url, **changes)  # type: ignore[arg-type]


def _verify(settings: Settings) -> None:
    engine = make_engine(settings.effective_database_url)
    try:
        verify_keys(settings, engine)
    finally:
        engine.dispose()


# Keys ------------------------------------------------------------------------------------


def test_first_start_records_check_values_never_the_keys(db_url: str, tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data", db_url)
    _verify(settings)
    master = (tmp_path / "data" / "master.key").read_text().strip()
    signing = (tmp_path / "data" / "signing.key").read_text().strip()
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = dict(conn.execute(select(KeyCheck.name, KeyCheck.check_value)).all())
    engine.dispose()
    assert sorted(rows) == ["master", "signing"]
    stored = " ".join(rows.values())
    for canary in (master, base64.b64decode(master).hex(), signing):
        assert canary not in stored
    _verify(settings)  # the same keys start again


def test_a_lost_master_key_file_stops_the_server_and_is_not_replaced(
    db_url: str, tmp_path: Path
) -> None:
    settings = _settings(tmp_path / "data", db_url)
    _verify(settings)
    key_file = tmp_path / "data" / "master.key"
    key_file.unlink()
    with pytest.raises(MasterKeyError) as caught:
        _verify(settings)
    message = str(caught.value)
    assert str(key_file) in message and "restore" in message and "backup" in message
    assert not key_file.exists()


def test_a_different_master_key_stops_the_server(db_url: str, tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data", db_url)
    _verify(settings)
    other = base64.b64encode(os.urandom(32)).decode()
    (tmp_path / "data" / "master.key").write_text(other + "\n")
    with pytest.raises(KeyCheckError, match="master key file .* does not hold the master key"):
        _verify(settings)
    configured = settings.model_copy(update={"master_key": SecretStr(other)})
    with pytest.raises(KeyCheckError, match="STEAD_MASTER_KEY") as caught:
        _verify(configured)
    assert other not in str(caught.value)


def test_a_lost_or_different_signing_key_stops_the_server(db_url: str, tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data", db_url)
    _verify(settings)
    key_file = tmp_path / "data" / "signing.key"
    key_file.write_text(secrets.token_hex(32))
    with pytest.raises(KeyCheckError, match="not the signing key"):
        _verify(settings)
    key_file.unlink()
    with pytest.raises(SigningKeyError, match="restore that file"):
        _verify(settings)
    assert not key_file.exists()


def test_replace_signing_key_accepts_a_new_key_on_purpose(db_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"STEAD_DATA_DIR": str(data), "STEAD_DATABASE_URL": db_url}
    _verify(_settings(data, db_url))
    (data / "signing.key").unlink()
    done = _run(["admin", "replace-signing-key"], **env)
    assert done.returncode == 0, done.stderr
    _verify(_settings(data, db_url))


def test_data_written_before_check_values_is_checked_by_its_key_ids(
    http: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    """A database of the previous release holds encrypted secrets and no check values: a
    master key that did not wrap them is refused."""
    project = http.post("/v1/projects", json=example("01-create-project-redshift"), headers=admin)
    body = {"name": "pw", "type": "PASSWORD", "value": "hunter2-canary"}
    path = f"/v1/projects/{project.json()['projectId']}/secrets"
    assert http.post(path, json=body, headers=admin).status_code == 201
    other = settings.model_copy(update={"data_dir": settings.data_dir.parent / "elsewhere"})
    with pytest.raises(MasterKeyError, match="holds secrets encrypted under a master key"):
        _verify(other)
    (other.data_dir / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(KeyCheckError, match="encrypted under master key id") as caught:
        _verify(other)
    assert "hunter2-canary" not in str(caught.value)
    _verify(settings)  # the right keys pass, and are recorded


def test_readyz_is_not_ok_while_the_master_key_does_not_match(db_url: str, tmp_path: Path) -> None:
    _verify(_settings(tmp_path / "first", db_url))  # the database now belongs to other keys
    app = create_app(_settings(tmp_path / "second", db_url))
    with TestClient(app, raise_server_exceptions=False) as client:
        resp = client.get("/readyz")
    assert_problem(resp, 503)
    assert "key does not match" in resp.json()["detail"]


@pytest.mark.process
def test_serve_refuses_a_lost_master_key_with_one_line_and_status_2(
    db_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    _verify(_settings(data, db_url))
    (data / "master.key").unlink()
    done = _run(
        ["serve", "--port", str(free_port())], STEAD_DATA_DIR=str(data), STEAD_DATABASE_URL=db_url
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: the database holds secrets encrypted under a master key")
    assert str(data / "master.key") in lines[0]
    assert not (data / "master.key").exists()


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"master_key": base64.b64encode(bytes(32)).decode()}, MasterKeyError, "not random"),
        ({"signing_key": "ab" * 32}, SigningKeyError, "not random"),
    ],
)
def test_production_refuses_weak_keys(
    tmp_path: Path, changes: dict[str, str], error: type[Exception], message: str
) -> None:
    base = {"signing_key": secrets.token_hex(32), "master_key": base64.b64encode(os.urandom(32))}
    settings = Settings(
        data_dir=tmp_path,
        environment="production",
        **{**base, **changes},  # type: ignore[arg-type]
    )
    with pytest.raises(error, match=message):
        create_app(settings)


def test_key_settings_read_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    (tmp_path / "master").write_text(key + "\n")
    monkeypatch.setenv("STEAD_MASTER_KEY_FILE", str(tmp_path / "master"))
    assert Settings().master_key.get_secret_value() == key
    monkeypatch.setenv("STEAD_MASTER_KEY", key)
    with pytest.raises(SettingsError, match="STEAD_MASTER_KEY and STEAD_MASTER_KEY_FILE"):
        Settings()
    monkeypatch.delenv("STEAD_MASTER_KEY")
    monkeypatch.setenv("STEAD_MASTER_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="cannot read") as caught:
        Settings()
    assert key not in str(caught.value)


# Version and upgrades ---------------------------------------------------------------------


def test_version() -> None:
    done = _run(["--version"])
    assert done.returncode == 0
    assert done.stdout == f"stead {__version__}\n"


def test_db_upgrade_says_what_it_applied(tmp_path: Path) -> None:
    env = {"STEAD_DATA_DIR": str(tmp_path)}
    first = _run(["db", "upgrade"], **env)
    assert first.returncode == 0, first.stderr
    applied = first.stdout.splitlines()[0]
    revisions = len(list((HERE / "versions").glob("2*.py")))
    assert applied.startswith(f"applied {revisions} migration(s): 20261129_0001, 20261206_dpc, ")
    assert applied.endswith(f", {head()}")
    again = _run(["db", "upgrade"], **env)
    assert again.stdout == f"already at head: {head()} (Stead {__version__}); nothing to apply\n"


@pytest.mark.process
def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    env = {"STEAD_DATA_DIR": str(tmp_path)}
    upgrade(f"sqlite:///{tmp_path / 'stead.db'}")
    engine = create_engine(f"sqlite:///{tmp_path / 'stead.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '20991231_future'"))
    engine.dispose()
    for args in (
        ["db", "upgrade"],
        ["serve", "--port", str(free_port())],
        ["admin", "create-client", "--name", "late"],
        ["admin", "scim-token", "--name", "late"],
        ["admin", "rotate-master-key"],
        ["admin", "replace-signing-key"],
    ):
        done = _run(args, **env)
        assert done.returncode == 2
        assert done.stderr.startswith(
            "error: the database schema is at revision 20991231_future, which Stead "
        ), done.stderr
        assert "a newer Stead has upgraded it" in done.stderr


@pytest.mark.process
def test_serve_no_migrate_refuses_an_old_schema(tmp_path: Path) -> None:
    upgrade(f"sqlite:///{tmp_path / 'stead.db'}", PREVIOUS_RELEASE_HEAD)
    done = _run(["serve", "--no-migrate", "--port", str(free_port())], STEAD_DATA_DIR=str(tmp_path))
    assert done.returncode == 2
    assert f"is at revision {PREVIOUS_RELEASE_HEAD} and Stead" in done.stderr
    assert "run `stead db upgrade` first" in done.stderr


@pytest.mark.process
def test_an_unreachable_database_is_one_line_without_its_password() -> None:
    url = f"postgresql+psycopg://stead:canary-pw-{secrets.token_hex(4)}@127.0.0.1:{free_port()}/x"
    for args in (
        ["db", "upgrade"],
        ["serve", "--port", str(free_port())],
        ["admin", "create-client", "--name", "late"],
        ["admin", "scim-token", "--name", "late"],
        ["admin", "rotate-master-key"],
        ["admin", "replace-signing-key"],
    ):
        done = _run(args, STEAD_DATABASE_URL=url)
        assert done.returncode == 2
        assert done.stderr.startswith("error: cannot use the database: "), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert "canary-pw" not in done.stderr + done.stdout


def test_released_migrations_are_never_edited() -> None:
    versions = HERE / "versions"
    for name, digest in RELEASED_MIGRATIONS.items():
        assert hashlib.sha256((versions / name).read_bytes()).hexdigest() == digest, name


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'stead.db'}"
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    name = f"stead_empty_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _drift(url: str) -> list[object]:
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    return list(diff)


def test_step_by_step_upgrade_reaches_the_models_schema(empty_db_url: str) -> None:
    """Each revision applied on its own, in order, ends at the schema of a fresh install
    (which test_migrations compares with the models)."""
    from alembic.script import ScriptDirectory

    from stead.migrations import alembic_config

    script = ScriptDirectory.from_config(alembic_config(empty_db_url))
    chain = [r.revision for r in reversed(list(script.walk_revisions()))]
    for revision in chain:
        assert upgrade(empty_db_url, revision) == [revision]
    assert _drift(empty_db_url) == []


def test_data_of_the_previous_release_migrates_forward(empty_db_url: str, tmp_path: Path) -> None:
    """Data written at the previous release's schema (through the API) is all there after the
    upgrade, and its secrets still decrypt."""
    assert upgrade(empty_db_url, PREVIOUS_RELEASE_HEAD)[-1] == PREVIOUS_RELEASE_HEAD
    settings = _settings(tmp_path / "data", empty_db_url)
    with TestClient(create_app(settings)) as client:
        factory = client.app.state.sessionmaker  # type: ignore[attr-defined]
        admin = auth(client, factory, "SUPER_ADMIN")
        project = client.post(
            "/v1/projects", json=example("01-create-project-redshift"), headers=admin
        ).json()
        body = {"name": "pw", "type": "PASSWORD", "value": "kept-across-upgrade"}
        path = f"/v1/projects/{project['projectId']}/secrets"
        assert client.post(path, json=body, headers=admin).status_code == 201
    assert upgrade(empty_db_url)[-1] == head()
    assert _drift(empty_db_url) == []
    _verify(settings)  # the previous release's keys pass and are recorded
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        listed = client.get("/v1/projects", headers=admin).json()
        assert [p["id"] for p in listed["results"]] == [project["projectId"]]
    engine = make_engine(empty_db_url)
    factory = make_sessionmaker(engine)
    attach_keyring(factory, load_keyring(settings))
    with factory() as session:
        value = read_value(session, project_id=project["projectId"], name="pw")
    engine.dispose()
    assert value == "kept-across-upgrade"


# Metrics -----------------------------------------------------------------------------------


def _sample(metrics: str, name: str, labels: str = "") -> float:
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    values = [
        float(line[len(prefix) :]) for line in metrics.splitlines() if line.startswith(prefix)
    ]
    return values[0] if values else 0.0


def test_operator_metrics(http: TestClient, admin: dict[str, str]) -> None:
    before = http.get("/metrics").text
    assert f'stead_build_info{{python="{sys.version.split()[0]}",version="{__version__}"}} 1.0' in (
        before
    )
    refused = http.post(
        "/oauth/dpc/token",
        data={"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"},
    )
    assert refused.status_code == 401
    after = http.get("/metrics").text
    failures = "stead_sign_in_failures_total"
    assert (
        _sample(after, failures, 'kind="client"') == _sample(before, failures, 'kind="client"') + 1
    )
    assert "stead_database_connections_in_use " in after


def test_apps_sharing_an_engine_count_each_connection_once(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    apps = [create_app(settings, engine=engine) for _ in range(3)]
    assert all(app.state.engine is engine for app in apps)

    def in_use() -> float:
        return _sample(apps[0].state.metrics.render().decode(), "stead_database_connections_in_use")

    before = in_use()
    with engine.connect():
        during = in_use()
    after = in_use()
    for app in apps:
        app.state.metrics.close()
    engine.dispose()
    assert (during - before, after - before) == (1, 0)


def test_database_errors_are_counted(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:9/x")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        name, labels = "stead_database_errors_total", 'kind="unavailable"'
        before = _sample(client.get("/metrics").text, name, labels)
        assert client.get("/readyz").status_code == 503
        assert _sample(client.get("/metrics").text, name, labels) == before + 1


def test_readyz_is_not_ok_with_secrets_of_another_key_and_nothing_recorded(
    http: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    project = http.post("/v1/projects", json=example("01-create-project-redshift"), headers=admin)
    body = {"name": "pw", "type": "PASSWORD", "value": "v"}
    path = f"/v1/projects/{project.json()['projectId']}/secrets"
    assert http.post(path, json=body, headers=admin).status_code == 201
    assert http.get("/readyz").status_code == 200
    other = settings.model_copy(update={"data_dir": settings.data_dir.parent / "other"})
    with TestClient(create_app(other), raise_server_exceptions=False) as client:
        assert_problem(client.get("/readyz"), 503)
