"""Backups of an installation: its SQLite database, taken while the server runs, and its keys.

A backup is a gzip-compressed tar archive (docs/operations.md, "Backup and restore"):

- ``manifest.json``: format version, Stead version, time taken, database kind, migration
  revision and the master key ids (never a key);
- ``stead.db``: on SQLite, an online, consistent copy made with SQLite's backup API
  (``sqlite3.Connection.backup``, https://www.sqlite.org/backup.html) in one step, so it is one
  read transaction's snapshot; writers keep writing meanwhile (WAL mode). On PostgreSQL there is
  none: the database is dumped with ``pg_dump`` instead;
- ``master.key`` and ``signing.key``: the keys in use, in the key files' own format, whether they
  come from the data directory or from ``STEAD_MASTER_KEY`` / ``STEAD_PREVIOUS_MASTER_KEYS`` /
  ``STEAD_SIGNING_KEY``. Without them a restored database's hosted secrets cannot be read.

With a passphrase the archive is encrypted with ``cryptography``'s Fernet (AES-128-CBC with
HMAC-SHA256, https://github.com/fernet/spec) under a key derived from the passphrase with scrypt
(RFC 7914; N=2**17, r=8, p=1, a 16-byte random salt). The encrypted file is one JSON header
line (``format``, ``version``, the scrypt parameters and salt) followed by the Fernet token.
"""

from __future__ import annotations

import base64
import importlib.metadata
import io
import json
import os
import secrets
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlalchemy.engine import make_url

from stead.db import sqlite_files
from stead.identity.keys import KEY_FILE as SIGNING_KEY_FILE
from stead.secrets.store import (
    MASTER_KEY_FILE,
    MasterKeyError,
    encode_key,
    key_file_path,
    key_id,
    parse_key,
    read_key_file,
)
from stead.settings import Settings

FORMAT = "stead-backup"
VERSION = 1
DATABASE_FILE = "stead.db"
MANIFEST_FILE = "manifest.json"
#: scrypt cost (RFC 7914 section 2): 2**17 with r=8 takes 128 MiB and about half a second, the
#: interactive-use setting of OWASP's Password Storage Cheat Sheet.
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16


class BackupError(RuntimeError):
    """A backup cannot be taken or restored. The message says why; it never holds a key, a
    passphrase or a secret."""


@dataclass(frozen=True)
class Manifest:
    """What a backup holds (``manifest.json``).

    Attributes:
        created_at: when it was taken, RFC 3339 UTC.
        database: ``sqlite`` (the archive holds ``stead.db``) or ``postgresql`` (keys only).
        revision: the database's migration revision at the time (``None`` for PostgreSQL).
        master_key_ids: ids of the master keys in ``master.key``, current first.
        stead_version: the version that took it.
    """

    created_at: str
    database: str
    revision: str | None
    master_key_ids: list[str]
    stead_version: str

    def to_json(self) -> bytes:
        """The manifest as ``manifest.json`` holds it."""
        body: dict[str, Any] = {"format": FORMAT, "version": VERSION, **self.__dict__}
        return json.dumps(body, indent=2).encode()


def is_sqlite(url: str) -> bool:
    """Whether the SQLAlchemy URL names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///PATH`` URL.

    Raises:
        BackupError: an in-memory database or a URL without a file.
    """
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("the SQLite database has no file")
    return Path(database)


def create_backup(settings: Settings, *, passphrase: str | None = None) -> tuple[bytes, Manifest]:
    """Take a backup of the installation ``settings`` describes: ``(file bytes, manifest)``.

    The SQLite database is copied online (module docstring); the keys are read as the server
    reads them. ``passphrase`` encrypts the archive (module docstring); empty is refused.

    Raises:
        BackupError: no database file, no keys yet, an empty passphrase.
    """
    url = settings.effective_database_url
    master_keys = _master_keys(settings)
    signing_key = _signing_key(settings)
    files: dict[str, bytes] = {
        MASTER_KEY_FILE: "".join(encode_key(key) + "\n" for key in master_keys).encode(),
        SIGNING_KEY_FILE: signing_key + b"\n",
    }
    revision: str | None = None
    if is_sqlite(url):
        with tempfile.TemporaryDirectory(prefix="stead-backup-") as tmp:
            copy = Path(tmp) / DATABASE_FILE
            _copy_sqlite(sqlite_path(url), copy)
            revision = _revision(copy)
            files[DATABASE_FILE] = copy.read_bytes()
    manifest = Manifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        database="sqlite" if is_sqlite(url) else "postgresql",
        revision=revision,
        master_key_ids=[key_id(key) for key in master_keys],
        stead_version=importlib.metadata.version("stead"),
    )
    files[MANIFEST_FILE] = manifest.to_json()
    archive = _tar(files)
    if passphrase is not None:
        archive = encrypt(archive, passphrase)
    return archive, manifest


def write_backup(path: Path, data: bytes) -> None:
    """Write a backup to ``path`` with mode 0600, atomically (a temporary file renamed).

    Raises:
        BackupError: ``path`` exists.
    """
    if path.exists():
        raise BackupError(f"{path} exists; choose another file name")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def is_encrypted(data: bytes) -> bool:
    """Whether backup file bytes are the encrypted form (a JSON header line first)."""
    return data.startswith(b'{"format": "' + FORMAT.encode())


def encrypt(archive: bytes, passphrase: str) -> bytes:
    """Encrypt archive bytes to ``passphrase`` (module docstring).

    Raises:
        BackupError: an empty passphrase.
    """
    if not passphrase:
        raise BackupError("the passphrase is empty")
    salt = secrets.token_bytes(SALT_BYTES)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "kdf": "scrypt",
        "n": SCRYPT_N,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": base64.b64encode(salt).decode(),
    }
    fernet = Fernet(_derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
    return json.dumps(header).encode() + b"\n" + fernet.encrypt(archive)


def decrypt(data: bytes, passphrase: str) -> bytes:
    """The archive inside an encrypted backup.

    Raises:
        BackupError: a malformed header, or a wrong passphrase / altered file (Fernet's HMAC
            fails: the two cannot be told apart).
    """
    head, _, token = data.partition(b"\n")
    try:
        header = json.loads(head)
        salt = base64.b64decode(header["salt"], validate=True)
        n, r, p = int(header["n"]), int(header["r"]), int(header["p"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError("not a Stead backup (unreadable header)") from exc
    if header.get("format") != FORMAT or header.get("kdf") != "scrypt":
        raise BackupError("not a Stead backup (unknown format)")
    # A header is read before it is authenticated: bound the work it can ask for.
    if not (2**14 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        raise BackupError("not a Stead backup (scrypt parameters out of range)")
    try:
        return Fernet(_derive(passphrase, salt, n, r, p)).decrypt(token)
    except (InvalidToken, ValueError):
        raise BackupError("wrong passphrase, or the backup file is damaged") from None


@dataclass(frozen=True)
class Restored:
    """What :func:`restore_backup` wrote: the manifest, the SQLite file (``None`` for a
    PostgreSQL backup) and the key files."""

    manifest: Manifest
    database: Path | None
    key_files: list[Path]


def restore_backup(
    settings: Settings, data: bytes, *, passphrase: str | None = None, force: bool = False
) -> Restored:
    """Restore a backup into the installation ``settings`` describes (stop its servers first).

    Writes the key files into the data directory (0600; the directory is created 0700; master
    keys of an existing key file that the backup lacks are kept after the backup's) and, for
    a SQLite backup, the database to the SQLite file of ``settings`` after ``PRAGMA
    integrity_check`` (https://www.sqlite.org/pragma.html#pragma_integrity_check) answered
    ``ok``; stale ``-wal``/``-shm`` files are removed. A PostgreSQL backup restores the keys;
    its database is restored with ``pg_restore``.

    Raises:
        BackupError: encrypted without ``passphrase`` (or the wrong one), not a backup, a SQLite
            backup while ``settings`` name PostgreSQL, the integrity check failed, or (without
            ``force``) the data directory is not empty or the database file exists.
    """
    if is_encrypted(data):
        if passphrase is None:
            raise BackupError("the backup is encrypted: give its passphrase")
        data = decrypt(data, passphrase)
    files = _untar(data)
    manifest = _manifest(files)
    data_dir = Path(settings.data_dir)
    url = settings.effective_database_url
    target: Path | None = None
    if manifest.database == "sqlite":
        if not is_sqlite(url):
            raise BackupError(
                "the backup holds a SQLite database but STEAD_DATABASE_URL names another "
                "database; unset it to restore into the data directory"
            )
        target = sqlite_path(url)
    if not force:
        if data_dir.exists() and any(data_dir.iterdir()):
            raise BackupError(f"the data directory {data_dir} is not empty; use --force")
        if target is not None and target.exists():
            raise BackupError(f"the database {target} exists; use --force")
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if target is not None:
        _place_database(files[DATABASE_FILE], target)
    master, signing = data_dir / MASTER_KEY_FILE, data_dir / SIGNING_KEY_FILE
    _write_private(master, _merged_master_keys(files[MASTER_KEY_FILE], master))
    _write_private(signing, files[SIGNING_KEY_FILE])
    return Restored(manifest, target, [master, signing])


def _merged_master_keys(restored: bytes, existing: Path) -> bytes:
    """The backup's master keys (its current one first), then any key of an existing key file
    that the backup lacks, kept to decrypt only: overwriting a data directory never loses a
    master key (``stead admin rotate-master-key`` drops the old ones once nothing needs them)."""
    lines = [line for line in restored.decode().splitlines() if line.strip()]
    if existing.exists():
        lines += [
            line for line in existing.read_text().splitlines() if line.strip() and line not in lines
        ]
    return "".join(line + "\n" for line in lines).encode()


def _master_keys(settings: Settings) -> list[bytes]:
    """The master keys in use, current first (from the settings, else the key file).

    Raises:
        BackupError: no key, or a key that is not one (the message names where, not the key).
    """
    configured = settings.master_key.get_secret_value()
    previous = settings.previous_master_keys.get_secret_value().split(",")
    path = key_file_path(settings)
    try:
        if configured:
            return [parse_key(configured, source="STEAD_MASTER_KEY")] + [
                parse_key(k, source="STEAD_PREVIOUS_MASTER_KEYS") for k in previous if k.strip()
            ]
        if path.exists():
            return read_key_file(path)
    except MasterKeyError as exc:
        raise BackupError(str(exc)) from None
    raise BackupError(f"no master key: {path} does not exist and STEAD_MASTER_KEY is not set")


def _signing_key(settings: Settings) -> bytes:
    """The signing key in use (the setting, else the key file); never creates one."""
    configured = settings.signing_key.get_secret_value()
    if configured:
        return configured.encode()
    path = Path(settings.data_dir) / SIGNING_KEY_FILE
    if not path.exists():
        raise BackupError(f"no signing key: {path} does not exist and STEAD_SIGNING_KEY is not set")
    return path.read_bytes().strip()


def _copy_sqlite(source: Path, target: Path) -> None:
    """Copy a live SQLite database in one backup step (one consistent snapshot)."""
    if not source.exists():
        raise BackupError(f"no database at {source}")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=-1)
    finally:
        dst.close()
        src.close()


def _revision(path: Path) -> str | None:
    with sqlite3.connect(path) as conn:
        try:
            row = conn.execute("select version_num from alembic_version").fetchone()
        except sqlite3.DatabaseError:
            return None
    return str(row[0]) if row else None


def _integrity_check(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        rows = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the backup's database is not readable: {exc}") from None
    finally:
        conn.close()
    if rows != ["ok"]:
        raise BackupError("the backup's database fails its integrity check: " + "; ".join(rows))


def _place_database(content: bytes, target: Path) -> None:
    """Write, check and move the database into place; remove the old one's WAL files."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.restore.{secrets.token_hex(4)}")
    try:
        _write_private(tmp, content)
        _integrity_check(tmp)
        for file in sqlite_files(target)[1:]:
            file.unlink(missing_ok=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _write_private(path: Path, content: bytes) -> None:
    """Replace ``path`` with ``content``, mode 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    key = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())
    return base64.urlsafe_b64encode(key)


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o600
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def _untar(data: bytes) -> dict[str, bytes]:
    """The regular files of a backup archive by name (nothing is extracted to disk)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            files: dict[str, bytes] = {}
            for member in tar.getmembers():
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is not None:
                    files[member.name] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError("not a Stead backup (not a readable archive)") from exc
    return files


def _manifest(files: dict[str, bytes]) -> Manifest:
    try:
        body = json.loads(files[MANIFEST_FILE])
        if body.pop("format") != FORMAT:
            raise ValueError("format")
        body.pop("version")
        manifest = Manifest(**body)
    except (KeyError, ValueError, TypeError) as exc:
        raise BackupError("not a Stead backup (no readable manifest.json)") from exc
    needed = [MASTER_KEY_FILE, SIGNING_KEY_FILE]
    if manifest.database == "sqlite":
        needed.append(DATABASE_FILE)
    missing = [name for name in needed if name not in files]
    if missing:
        raise BackupError(f"the backup is incomplete: {', '.join(missing)} missing")
    return manifest
