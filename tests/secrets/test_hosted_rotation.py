"""Master keys of the hosted store: where they come from, and rotation while other threads (each
with its own keyring, as another server process would have) keep reading and writing."""

from __future__ import annotations

import base64
import os
import secrets
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stead.app import create_app
from stead.db import make_engine, make_sessionmaker, session_scope
from stead.secrets import store
from stead.secrets.models import HostedSecret, HostedSecretVersion
from stead.secrets.store import (
    Keyring,
    MasterKeyError,
    SecretUnreadable,
    attach_keyring,
    key_id,
    load_keyring,
    read_key_file,
    read_value,
    rotate_master_key,
)
from stead.settings import Settings
from tests.support.factories import example

SECRETS = 12
ROTATIONS = 3


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def _project_with_secrets(http: TestClient, admin: dict[str, str]) -> tuple[str, dict[str, str]]:
    resp = http.post("/v1/projects", json=example("01-create-project-redshift"), headers=admin)
    project_id = resp.json()["projectId"]
    values = {f"s{n}": f"value-{n}-{os.urandom(8).hex()}" for n in range(SECRETS)}
    for name, value in values.items():
        body = {"name": name, "type": "PASSWORD", "value": "first " + value}
        resp = http.post(f"/v1/projects/{project_id}/secrets", json=body, headers=admin)
        assert resp.status_code == 201, resp.text
        resp = http.put(
            f"/v1/projects/{project_id}/secrets/{name}", json={"value": value}, headers=admin
        )
        assert resp.json()["version"] == 2
    return project_id, values


def _own_factory(http: TestClient, keyring: Keyring) -> sessionmaker[Session]:
    """Sessions on the app's database with their own keyring, as another process has."""
    factory = make_sessionmaker(http.app.state.engine)  # type: ignore[attr-defined]
    attach_keyring(factory, keyring)
    return factory


def test_rotation_while_other_threads_read_and_write(
    http: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    project_id, values = _project_with_secrets(http, admin)
    path = store.key_file_path(settings)
    first_id = key_id(read_key_file(path)[0])
    failures: list[str] = []
    reads = 0
    written: dict[str, str] = {}
    done = threading.Event()

    def reader() -> None:
        nonlocal reads
        factory = _own_factory(http, Keyring.from_file(path))  # loaded before any rotation
        while not done.is_set():
            for name in values:
                try:
                    with factory() as session:
                        got = read_value(session, project_id=project_id, name=name)
                except Exception as exc:  # any failed read fails the test
                    failures.append(f"read {name}: {type(exc).__name__}: {exc}")
                    continue
                reads += 1
                if got not in (values[name], written.get(name)):
                    failures.append(f"read {name}: wrong value")

    def writer() -> None:
        factory = _own_factory(http, Keyring.from_file(path))
        number = 0
        while not done.is_set():
            number += 1
            value = f"written-{number}-{os.urandom(4).hex()}"
            try:
                with session_scope(factory, write=True) as session:
                    secret = store.find(session, project_id=project_id, name="written")
                    if secret is None:
                        secret = HostedSecret(
                            project_id=project_id,
                            name="written",
                            name_key="written",
                            type="PASSWORD",
                            version=0,
                        )
                        session.add(secret)
                        session.flush()
                    store.store_value(session, secret=secret, value=value)
                written["written"] = value
            except Exception as exc:
                failures.append(f"write: {type(exc).__name__}: {exc}")
            time.sleep(0.01)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    threads.append(threading.Thread(target=writer))
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.2)
        rotations = []
        for _ in range(ROTATIONS):
            rotations.append(
                rotate_master_key(settings, http.app.state.sessionmaker)  # type: ignore[attr-defined]
            )
            time.sleep(0.1)
        time.sleep(0.2)
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=60)
    assert failures == []
    assert reads > SECRETS * len(threads)

    # every version was re-wrapped by each rotation, and the file holds only the last key
    assert rotations[0].rewrapped >= SECRETS * 2
    assert len({r.key_id for r in rotations} | {first_id}) == ROTATIONS + 1
    assert [key_id(k) for k in read_key_file(path)] == [rotations[-1].key_id]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    factory = http.app.state.sessionmaker  # type: ignore[attr-defined]
    with factory() as session:
        key_ids = set(session.scalars(select(HostedSecretVersion.key_id)))
        assert key_ids == {rotations[-1].key_id}
        for name, value in values.items():
            assert read_value(session, project_id=project_id, name=name) == value
        assert read_value(session, project_id=project_id, name="written") == written["written"]
    # a process starting now knows only the new key, and reads everything
    fresh = _own_factory(http, Keyring.from_file(path))
    with fresh() as session:
        assert all(
            read_value(session, project_id=project_id, name=name) == value
            for name, value in values.items()
        )


def test_rotation_with_the_key_in_settings(
    http: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    old, new = os.urandom(32), os.urandom(32)

    def with_keys(master: bytes, *previous: str) -> Settings:
        return settings.model_copy(
            update={
                "master_key": SecretStr(_b64(master)),
                "previous_master_keys": SecretStr(",".join(previous)),
            }
        )

    with TestClient(create_app(with_keys(old))) as app_old:
        project_id, values = _project_with_secrets(app_old, admin)
    engine = make_engine(settings.effective_database_url)
    factory = make_sessionmaker(engine)
    # step 1: the new key is current; the old one (among others) still decrypts
    both = with_keys(new, f" {_b64(os.urandom(32))} ", _b64(old))
    attach_keyring(factory, load_keyring(both))
    with factory() as session:
        assert read_value(session, project_id=project_id, name="s0") == values["s0"]
    rotation = rotate_master_key(both, factory)
    assert (rotation.key_id, rotation.rewrapped) == (key_id(new), SECRETS * 2)
    assert rotate_master_key(both, factory).rewrapped == 0
    # step 2: the old key goes; everything reads with the new one alone
    attach_keyring(factory, load_keyring(with_keys(new)))
    with factory() as session:
        for name, value in values.items():
            assert read_value(session, project_id=project_id, name=name) == value
    attach_keyring(factory, load_keyring(with_keys(old)))
    with pytest.raises(SecretUnreadable), factory() as session:
        read_value(session, project_id=project_id, name="s0")
    engine.dispose()


def test_a_failed_rotation_leaves_every_value_readable(
    http: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    project_id, values = _project_with_secrets(http, admin)
    factory = http.app.state.sessionmaker  # type: ignore[attr-defined]
    path = store.key_file_path(settings)
    old_id = key_id(read_key_file(path)[0])
    # a row that fails authentication stops the rotation before anything is re-wrapped
    with session_scope(factory, write=True) as session:
        row = session.scalars(
            select(HostedSecretVersion).order_by(HostedSecretVersion.id.desc()).limit(1)
        ).one()
        row.wrapped_key = row.wrapped_key[:-1] + bytes([row.wrapped_key[-1] ^ 1])
        tampered = row.secret_id
    with pytest.raises(SecretUnreadable):
        rotate_master_key(settings, factory)
    keys = read_key_file(path)
    assert len(keys) == 2 and key_id(keys[1]) == old_id  # the new key leads, the old stays
    with factory() as session:
        assert set(session.scalars(select(HostedSecretVersion.key_id))) == {old_id}
        tampered_name = session.get(HostedSecret, tampered).name  # type: ignore[union-attr]
        for name, value in values.items():
            if name != tampered_name:
                assert read_value(session, project_id=project_id, name=name) == value
    resp = http.delete(f"/v1/projects/{project_id}/secrets/{tampered_name}", headers=admin)
    assert resp.status_code == 204
    rotation = rotate_master_key(settings, factory)
    assert [key_id(k) for k in read_key_file(path)] == [rotation.key_id]
    with factory() as session:
        assert read_value(session, project_id=project_id, name="s0") == values["s0"]


def test_key_file_is_created_once_and_private(tmp_path: Path, db_url: str) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url)
    first = load_keyring(settings)
    path = tmp_path / "data" / store.MASTER_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keyring(settings).current_id == first.current_id
    assert len(read_key_file(path)) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"environment": "production"}, "STEAD_MASTER_KEY is not set"),
        ({"master_key": "c2hvcnQ="}, "STEAD_MASTER_KEY must be the base64"),
        ({"master_key": "not base64!"}, "STEAD_MASTER_KEY must be the base64"),
        (
            {"master_key": _b64(b"k" * 32), "previous_master_keys": "x"},
            "STEAD_PREVIOUS_MASTER_KEYS must be the base64",
        ),
        ({"previous_master_keys": _b64(b"k" * 32)}, "STEAD_MASTER_KEY is not"),
    ],
)
def test_unusable_key_configuration_stops_startup(
    tmp_path: Path, db_url: str, changes: dict[str, str], message: str
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        signing_key=secrets.token_hex(32),
        **changes,
    )
    with pytest.raises(MasterKeyError, match=message) as caught:
        create_app(settings)
    assert not (tmp_path / "data" / store.MASTER_KEY_FILE).exists()
    assert "k" * 8 not in str(caught.value)


def test_production_uses_a_configured_key(tmp_path: Path, db_url: str) -> None:
    key = _b64(os.urandom(32))
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        signing_key=secrets.token_hex(32),
        environment="production",
        master_key=key,
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
    assert not (tmp_path / "data" / store.MASTER_KEY_FILE).exists()


def test_empty_key_file_is_refused(tmp_path: Path, db_url: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / store.MASTER_KEY_FILE).write_text("\n")
    with pytest.raises(MasterKeyError, match="is empty"):
        load_keyring(Settings(data_dir=tmp_path / "data", database_url=db_url))


def test_cli_rotates(
    http: TestClient, admin: dict[str, str], settings: Settings, db_url: str
) -> None:
    project_id, values = _project_with_secrets(http, admin)
    path = store.key_file_path(settings)
    env = {
        **os.environ,
        "STEAD_DATA_DIR": str(settings.data_dir),
        "STEAD_DATABASE_URL": db_url,
    }
    stead = Path(sys.executable).with_name("stead")
    result = subprocess.run(
        [str(stead), "admin", "rotate-master-key"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    new_id = key_id(read_key_file(path)[0])
    assert result.stdout.strip() == (
        f"re-wrapped {SECRETS * 2} data keys; current master key id {new_id}"
    )
    factory = http.app.state.sessionmaker  # type: ignore[attr-defined]
    with factory() as session:
        assert read_value(session, project_id=project_id, name="s1") == values["s1"]
    bad = subprocess.run(
        [str(stead), "admin", "rotate-master-key"],
        env={**env, "STEAD_MASTER_KEY": "c2VjcmV0LWJ1dC1zaG9ydA=="},
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "error: STEAD_MASTER_KEY must be the base64 encoding of 32 random bytes"
    )
