"""``stead backup`` / ``stead restore`` and the PostgreSQL procedure of docs/operations.md, on a
real server under write load."""

from __future__ import annotations

import base64
import gzip
import os
import secrets
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from stead.backup import (
    DATABASE_FILE,
    BackupError,
    _tar,
    _untar,
    create_backup,
    decrypt,
    encrypt,
    restore_backup,
)
from stead.cli.main import app
from stead.db import make_engine, make_sessionmaker, session_scope
from stead.secrets.store import attach_keyring, key_id, load_keyring, read_value
from stead.settings import Settings, get_settings
from tests.support.postgres import PG_BIN
from tests.support.served import Served, serve

PASSPHRASE = "canary-passphrase-7f3a9c"
SECRET_VALUE = "canary-hosted-secret-52e1b8"


def stead(*args: str, env: dict[str, str], stdin: str = "") -> Result:
    """Run the ``stead`` CLI (in this process, settings read afresh) with ``env`` as its only
    ``STEAD_*`` variables."""
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("STEAD_")}
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args), env={**clean, **env}, input=stdin)
    finally:
        get_settings.cache_clear()


def project_names(served: Served) -> set[str]:
    """Every project's name, over HTTP, page by page."""
    headers, names, page = served.headers(), set(), 0
    while True:
        body = httpx.get(
            f"{served.url}/v1/projects", params={"page": page, "size": 100}, headers=headers
        ).json()
        names |= {p["name"] for p in body["results"]}
        if (page + 1) * 100 >= body["total"]:
            return names
        page += 1


class Writers:
    """Threads creating projects over HTTP until stopped; ``acked`` holds every name the
    server answered 201 for, in order."""

    def __init__(self, served: Served, threads: int = 2) -> None:
        self.headers = served.headers()
        self.url = served.url
        self.acked: list[str] = []
        self.failures: list[int] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]

    def _run(self, worker: int) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=30) as client:
            count = 0
            while not self.stop.is_set():
                name = f"load-{worker}-{count}"
                response = client.post(
                    "/v1/projects",
                    json={"name": name, "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"},
                )
                if response.status_code == 201:
                    self.acked.append(name)
                else:
                    self.failures.append(response.status_code)
                count += 1

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def wait_for(self, count: int) -> None:
        """Block until at least ``count`` writes were acknowledged."""
        while len(self.acked) < count and not self.failures:
            threading.Event().wait(0.05)
        assert not self.failures, self.failures


def provision(served: Served) -> str:
    """A project with a hosted secret: the project's id."""
    headers = served.headers()
    project = httpx.post(
        f"{served.url}/v1/projects",
        headers=headers,
        json={"name": "keeper", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"},
    )
    assert project.status_code == 201, project.text
    project_id: str = project.json()["projectId"]
    secret = httpx.post(
        f"{served.url}/v1/projects/{project_id}/secrets",
        headers=headers,
        json={"name": "warehouse-password", "type": "PASSWORD", "value": SECRET_VALUE},
    )
    assert secret.status_code == 201, secret.text
    return project_id


def hosted_secret(data_dir: Path, db_url: str, project_id: str) -> str:
    """The hosted secret's value, decrypted with the keys of ``data_dir`` by Stead's store."""
    settings = Settings(data_dir=data_dir, database_url=db_url)
    engine = make_engine(db_url)
    try:
        factory = make_sessionmaker(engine)
        attach_keyring(factory, load_keyring(settings))
        with session_scope(factory, write=False) as session:
            return read_value(session, project_id=project_id, name="warehouse-password")
    finally:
        engine.dispose()


def libpq(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as ``pg_dump`` / ``pg_restore`` take it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def restored_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    """Where the restore goes: a SQLite file in the new data directory, or a new, empty
    PostgreSQL database next to ``db_url``'s."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored' / DATABASE_FILE}"
        return
    name = make_url(db_url).database + "_restored"
    admin = create_engine(make_url(db_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(db_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.slow
def test_backup_under_write_load_restores_every_acknowledged_object(
    db_url: str, restored_url: str, tmp_path: Path
) -> None:
    data_dir, restored_dir = tmp_path / "data", tmp_path / "restored"
    backup, dump = tmp_path / "stead.backup", tmp_path / "stead.pgdump"
    env = {"STEAD_DATA_DIR": str(data_dir), "STEAD_DATABASE_URL": db_url}
    with serve(db_url, data_dir) as served:
        project_id = provision(served)
        with Writers(served) as writers:
            writers.wait_for(10)
            acked_before = set(writers.acked)
            if db_url.startswith("postgresql"):
                dumped = subprocess.run(
                    [str(PG_BIN / "pg_dump"), "--format=custom", "-f", str(dump), libpq(db_url)],
                    capture_output=True,
                    text=True,
                )
                assert dumped.returncode == 0, dumped.stderr
            done = stead("backup", str(backup), "--passphrase-stdin", env=env, stdin=PASSPHRASE)
            assert done.exit_code == 0, done.stderr
            writers.wait_for(len(acked_before) + 10)  # the server kept taking writes
        assert not writers.failures

    if db_url.startswith("postgresql"):
        loaded = subprocess.run(
            [str(PG_BIN / "pg_restore"), "--no-owner", "-d", libpq(restored_url), str(dump)],
            capture_output=True,
            text=True,
        )
        assert loaded.returncode == 0, loaded.stderr
        restore_env = {"STEAD_DATA_DIR": str(restored_dir), "STEAD_DATABASE_URL": restored_url}
    else:
        restore_env = {"STEAD_DATA_DIR": str(restored_dir)}
    done = stead("restore", str(backup), "--passphrase-stdin", env=restore_env, stdin=PASSPHRASE)
    assert done.exit_code == 0, done.stderr
    if db_url.startswith("sqlite"):
        assert "integrity check ok" in done.stdout
        assert (restored_dir / DATABASE_FILE).stat().st_mode & 0o777 == 0o600
    assert (restored_dir / "master.key").stat().st_mode & 0o777 == 0o600

    with serve(restored_url, restored_dir) as served:
        names = project_names(served)
    assert acked_before <= names
    assert "keeper" in names
    assert len(acked_before) >= 10
    assert hosted_secret(restored_dir, restored_url, project_id) == SECRET_VALUE


@pytest.mark.process
def test_encrypted_backup_needs_its_passphrase_and_hides_every_secret(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    db_url = f"sqlite:///{data_dir / DATABASE_FILE}"
    with serve(db_url, data_dir) as served:
        project_id = provision(served)
    env = {"STEAD_DATA_DIR": str(data_dir)}
    plain, encrypted = tmp_path / "plain.backup", tmp_path / "encrypted.backup"
    assert stead("backup", str(plain), env=env).exit_code == 0
    done = stead("backup", str(encrypted), "--passphrase-stdin", env=env, stdin=PASSPHRASE)
    assert done.exit_code == 0, done.stderr
    assert encrypted.stat().st_mode & 0o777 == 0o600

    master_key = (data_dir / "master.key").read_text().strip()
    signing_key = (data_dir / "signing.key").read_text().strip()
    # The plain archive holds the keys in clear text; the encrypted file holds nothing readable.
    assert master_key.encode() in gzip.decompress(plain.read_bytes())
    blob = encrypted.read_bytes()
    for canary in (PASSPHRASE, master_key, signing_key, "keeper", SECRET_VALUE):
        assert canary.encode() not in blob
    with pytest.raises(tarfile.ReadError), tarfile.open(encrypted):
        pass

    # Without the passphrase, or with a wrong one: refused, nothing written.
    target = tmp_path / "restored"
    wrong = stead(
        "restore",
        str(encrypted),
        "--passphrase-stdin",
        env={"STEAD_DATA_DIR": str(target)},
        stdin="not-the-passphrase",
    )
    assert wrong.exit_code == 2
    assert "wrong passphrase" in wrong.stderr
    assert PASSPHRASE not in wrong.stderr + wrong.stdout
    assert not target.exists()
    no_tty = stead("restore", str(encrypted), env={"STEAD_DATA_DIR": str(target)})
    assert no_tty.exit_code != 0
    assert not target.exists()

    right = stead(
        "restore",
        str(encrypted),
        "--passphrase-stdin",
        env={"STEAD_DATA_DIR": str(target)},
        stdin=PASSPHRASE,
    )
    assert right.exit_code == 0, right.stderr
    restored_url = f"sqlite:///{target / DATABASE_FILE}"
    assert hosted_secret(target, restored_url, project_id) == SECRET_VALUE


@pytest.mark.process
def test_restore_refuses_a_non_empty_data_dir_and_a_damaged_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with serve(f"sqlite:///{data_dir / DATABASE_FILE}", data_dir):
        pass
    backup = tmp_path / "stead.backup"
    env = {"STEAD_DATA_DIR": str(data_dir)}
    assert stead("backup", str(backup), env=env).exit_code == 0
    again = stead("backup", str(backup), env=env)
    assert again.exit_code == 2 and "exists" in again.stderr

    refused = stead("restore", str(backup), env=env)
    assert refused.exit_code == 2
    assert "not empty" in refused.stderr and "--force" in refused.stderr
    forced = stead("restore", str(backup), "--force", env=env)
    assert forced.exit_code == 0, forced.stderr

    # A database whose pages were overwritten fails the integrity check and is not put in place.
    files = _untar(backup.read_bytes())
    database = bytearray(files[DATABASE_FILE])
    database[4096 * 2 : 4096 * 6] = b"\xa5" * (4096 * 4)
    files[DATABASE_FILE] = bytes(database)
    damaged = tmp_path / "damaged.backup"
    damaged.write_bytes(_tar(files))
    target = tmp_path / "elsewhere"
    done = stead("restore", str(damaged), env={"STEAD_DATA_DIR": str(target)})
    assert done.exit_code == 2
    assert "integrity check" in done.stderr or "not readable" in done.stderr
    assert not (target / DATABASE_FILE).exists()
    assert not (target / "master.key").exists()

    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("hello")
    done = stead("restore", str(not_a_backup), env={"STEAD_DATA_DIR": str(target)})
    assert done.exit_code == 2 and "not a Stead backup" in done.stderr


def test_keys_given_as_settings_are_backed_up_and_restored_as_key_files(
    sqlite_template: Path, tmp_path: Path
) -> None:
    current, previous = (base64.b64encode(secrets.token_bytes(32)).decode() for _ in range(2))
    signing = secrets.token_hex(32)
    shutil.copy(sqlite_template, tmp_path / DATABASE_FILE)
    settings = Settings(
        data_dir=tmp_path / "unused",
        database_url=f"sqlite:///{tmp_path / DATABASE_FILE}",
        master_key=current,
        previous_master_keys=previous,
        signing_key=signing,
    )
    with pytest.raises(BackupError, match="STEAD_MASTER_KEY must be the base64"):
        create_backup(settings.model_copy(update={"master_key": SecretStr("not-a-key")}))
    data, manifest = create_backup(settings)
    assert manifest.master_key_ids == [key_id(base64.b64decode(k)) for k in (current, previous)]
    assert manifest.revision is not None

    target = Settings(data_dir=tmp_path / "restored")
    restored = restore_backup(target, data)
    assert restored.database == tmp_path / "restored" / DATABASE_FILE
    assert (tmp_path / "restored" / "master.key").read_text() == f"{current}\n{previous}\n"
    assert (tmp_path / "restored" / "signing.key").read_text().strip() == signing
    keyring = load_keyring(target)
    assert keyring.current_id == manifest.master_key_ids[0]
    keyring.cipher(manifest.master_key_ids[1])  # the previous key still decrypts
    with pytest.raises(BackupError, match="not empty"):
        restore_backup(target, data)

    # --force over an installation with another master key keeps that key, to decrypt only
    other = base64.b64encode(secrets.token_bytes(32)).decode()
    (tmp_path / "restored" / "master.key").write_text(f"{other}\n{current}\n")
    restore_backup(target, data, force=True)
    assert (tmp_path / "restored" / "master.key").read_text() == f"{current}\n{previous}\n{other}\n"

    # an encrypted header asking for more scrypt work than a backup ever does is refused
    header, _, token = encrypt(data, PASSPHRASE).partition(b"\n")
    greedy = header.replace(b'"n": 131072', b'"n": 1073741824') + b"\n" + token
    with pytest.raises(BackupError, match="out of range"):
        decrypt(greedy, PASSPHRASE)
