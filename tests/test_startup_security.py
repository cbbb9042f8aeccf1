"""Startup hardening: the database files are private, production refuses a weak or missing
signing key, and ``stead serve`` explains an unusable key in one line."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from stead.db import make_engine, sqlite_files
from stead.identity.keys import MIN_KEY_BYTES, SigningKeyError, load_signing_key
from stead.migrations import upgrade
from stead.settings import Settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The usual umask 022, under which SQLite creates 0644 files."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("usual_umask")
def test_sqlite_files_are_owner_only(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "stead", database_url="")
    upgrade(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    with engine.connect() as conn:  # WAL mode: -wal and -shm exist while connected
        conn.execute(text("select count(*) from accounts"))
        db = settings.data_dir / "stead.db"
        assert [_mode(f) for f in sqlite_files(db)] == [0o600] * 3
    engine.dispose()


@pytest.mark.usefixtures("usual_umask")
def test_an_existing_readable_database_is_made_private(tmp_path: Path) -> None:
    db = tmp_path / "stead.db"
    upgrade(f"sqlite:///{db}")
    db.chmod(0o644)
    make_engine(f"sqlite:///{db}").dispose()
    assert _mode(db) == 0o600


@pytest.mark.parametrize("key", ["k", "abc", "s" * (MIN_KEY_BYTES - 1)])
def test_production_refuses_a_short_signing_key(tmp_path: Path, key: str) -> None:
    settings = Settings(data_dir=tmp_path, signing_key=key, environment="production")
    with pytest.raises(SigningKeyError, match=f"at least {MIN_KEY_BYTES} bytes") as caught:
        load_signing_key(settings)
    assert key not in str(caught.value).replace("signing key", "")


def test_production_refuses_a_short_key_file(tmp_path: Path) -> None:
    (tmp_path / "signing.key").write_text("short\n")
    settings = Settings(data_dir=tmp_path, environment="production")
    with pytest.raises(SigningKeyError, match="5 bytes long"):
        load_signing_key(settings)


def test_production_accepts_a_32_byte_key_and_development_any(tmp_path: Path) -> None:
    strong = secrets.token_hex(MIN_KEY_BYTES // 2)
    production = Settings(data_dir=tmp_path, signing_key=strong, environment="production")
    assert load_signing_key(production) == strong.encode()
    assert load_signing_key(Settings(data_dir=tmp_path, signing_key="k")) == b"k"


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    stead = Path(sys.executable).with_name("stead")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
    environ.update(STEAD_DATA_DIR=str(tmp_path / "data"), STEAD_ENVIRONMENT="production", **env)
    return subprocess.run(
        [str(stead), "serve", "--port", "9"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.process
def test_serve_without_a_signing_key_prints_one_line(tmp_path: Path) -> None:
    done = _serve(tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: STEAD_SIGNING_KEY is not set")


@pytest.mark.process
def test_serve_with_a_weak_signing_key_prints_one_line(tmp_path: Path) -> None:
    done = _serve(tmp_path, STEAD_SIGNING_KEY="abc")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "at least 32 bytes" in lines[0]
    assert "abc" not in lines[0]
