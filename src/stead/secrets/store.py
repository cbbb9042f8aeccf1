"""The hosted secret store: envelope encryption of secret values (docs/api.md, Secrets).

Every version of a hosted secret gets a fresh 256-bit data key. The value is encrypted with
AES-256-GCM under that data key, and the data key is encrypted ("wrapped") with AES-256-GCM under
the master key. Both take as associated data the project id, the secret's name key and the
version number, so a ciphertext or wrapped key copied onto another row fails authentication
instead of decrypting. Only ``cryptography``'s AESGCM does the cryptography.

The master key never enters the database. It comes from ``STEAD_MASTER_KEY`` (with
``STEAD_PREVIOUS_MASTER_KEYS`` while rotating) or from the key file ``<data_dir>/master.key``
(mode 0600, created on first start outside production): one base64 key per line, the first one
encrypts new versions, every one decrypts. A version row names the master key that wrapped its
data key by a key id, a hash of the key.

:func:`rotate_master_key` re-wraps every data key in one transaction. With the key file it first
writes the new key in front of the old ones, re-wraps, commits, and only then drops the old keys
from the file. A :class:`Keyring` reloads the file when it meets a key id it does not know
(readers) and whenever the file changed (writers), and never forgets a key it has loaded, so
reads in other processes keep working during and after a rotation. On PostgreSQL, writers take a
ROW EXCLUSIVE lock on the version table before choosing the master key and the rotation an
EXCLUSIVE one (which still lets readers through), so no version can be written under the old key
once the rotation has started; SQLite serialises write transactions anyway.

Agents' client secrets (readable again through ``GET /v1/agents/{agentId}/credentials``) are
sealed the same way, one data key per secret, bound to the agent's id
(:func:`seal_agent_secret`), and re-wrapped by the same rotation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from stead.agents.models import Agent
from stead.db import named_in_project, session_scope
from stead.errors import NotFound
from stead.logs import remember_secret
from stead.secrets.models import HostedSecret, HostedSecretVersion, KeyCheck, key_check_value
from stead.settings import Settings
from stead.wire import lookup_key

MASTER_KEY_FILE = "master.key"
#: The name of the master key's row in the key check table.
MASTER = "master"
KEY_BYTES = 32
#: A key with fewer distinct bytes than this is refused in production as not random (32 random
#: bytes have about 30 distinct values; an all-zero or repeated-pattern key has a handful).
MIN_DISTINCT_BYTES = 8
NONCE_BYTES = 12
_INFO_KEY = "stead.master_keyring"


class MasterKeyError(RuntimeError):
    """The master key configuration is missing or unusable (raised at startup or rotation)."""


class SecretUnreadable(RuntimeError):
    """A stored version cannot be decrypted: its master key is unknown, or its row fails
    authentication (changed or moved). The message names the secret, never a value."""


def key_id(key: bytes) -> str:
    """The id of a master key: 16 hex digits of a SHA-256 over a label and the key."""
    return hashlib.sha256(b"stead master key id\x00" + key).hexdigest()[:16]


def parse_key(encoded: str, *, source: str, production: bool = False) -> bytes:
    """Decode a base64 master key.

    Raises:
        MasterKeyError: not base64, or not 32 bytes; in ``production``, fewer than
            :data:`MIN_DISTINCT_BYTES` distinct bytes (not random). The message names
            ``source``, not the key.
    """
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"{source} must be the base64 encoding of {KEY_BYTES} random bytes")
    if production and len(set(key)) < MIN_DISTINCT_BYTES:
        raise MasterKeyError(
            f"{source} is not random enough for production (a repeated pattern); "
            "generate one with `openssl rand -base64 32`"
        )
    return key


def encode_key(key: bytes) -> str:
    """The base64 text form of a master key (as in ``STEAD_MASTER_KEY`` and the key file)."""
    return base64.b64encode(key).decode()


def read_key_file(path: Path, *, production: bool = False) -> list[bytes]:
    """The keys of a key file, current first.

    Raises:
        MasterKeyError: the file is empty or a line is not a key (see :func:`parse_key`).
    """
    keys = [
        parse_key(line, source=f"{path} line {number}", production=production)
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if line.strip()
    ]
    if not keys:
        raise MasterKeyError(f"master key file {path} is empty")
    return keys


def write_key_file(path: Path, keys: Sequence[bytes]) -> None:
    """Replace the key file atomically with ``keys`` (current first), mode 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(encode_key(key) + "\n" for key in keys))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _create_key_file(path: Path) -> None:
    """Write a new random key to ``path`` (mode 0600; a missing folder is created 0700) unless
    another process got there first."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(encode_key(AESGCM.generate_key(bit_length=256)) + "\n")
    try:
        os.link(tmp, path)  # atomic: the first process to link wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class Keyring:
    """The master keys a process knows, by key id: the current one wraps new data keys, any
    known one unwraps. Thread-safe.

    With a ``path`` (the key file), the keyring reloads the file when it changed before handing
    out the current key, and when asked for an unknown key id; keys once loaded are kept.
    """

    def __init__(self, keys: Sequence[bytes], *, path: Path | None = None) -> None:
        if not keys:
            raise MasterKeyError("no master key")
        self._lock = threading.Lock()
        self._path = path
        self._stamp = _stamp(path) if path else None
        self._ciphers: dict[str, AESGCM] = {}
        self._checks: set[str] = set()
        self._current = ""
        self._current_check = ""
        self._install(keys)

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        """A keyring following the key file ``path``."""
        return cls(read_key_file(path), path=path)

    def _install(self, keys: Sequence[bytes]) -> None:
        for key in keys:
            self._ciphers.setdefault(key_id(key), AESGCM(key))
            self._checks.add(key_check_value(key, MASTER))
        self._current = key_id(keys[0])
        self._current_check = key_check_value(keys[0], MASTER)

    def _reload(self, *, force: bool) -> None:
        if self._path is None:
            return
        with self._lock:
            stamp = _stamp(self._path)
            if stamp is None or (stamp == self._stamp and not force):
                return  # a missing file keeps the keys already loaded
            self._install(read_key_file(self._path))
            self._stamp = stamp

    @property
    def current_id(self) -> str:
        """The id of the key that wraps new data keys (as last loaded)."""
        return self._current

    def current(self) -> tuple[str, AESGCM]:
        """``(key id, cipher)`` of the current master key, after reloading a changed key file."""
        self._reload(force=False)
        with self._lock:
            return self._current, self._ciphers[self._current]

    @property
    def current_check(self) -> str:
        """The key check value of the current key (:func:`key_check_value`, as last loaded)."""
        return self._current_check

    @property
    def known_ids(self) -> list[str]:
        """The ids of every key loaded so far."""
        return list(self._ciphers)

    def knows(self, wanted: str) -> bool:
        """Whether master key id ``wanted`` is known, after reloading the key file if not."""
        if wanted not in self._ciphers:
            self._reload(force=True)
        return wanted in self._ciphers

    def matches(self, check: str) -> bool:
        """Whether one of the keys has the key check value ``check``, after reloading the key
        file if none has."""
        if check not in self._checks:
            self._reload(force=True)
        return check in self._checks

    def cipher(self, wanted: str) -> AESGCM:
        """The cipher of master key ``wanted``.

        Raises:
            SecretUnreadable: no such key, even after reloading the key file.
        """
        cipher = self._ciphers.get(wanted)
        if cipher is None:
            self._reload(force=True)
            cipher = self._ciphers.get(wanted)
        if cipher is None:
            raise SecretUnreadable(f"master key {wanted} is not configured")
        return cipher


def key_file_path(settings: Settings) -> Path:
    """``<data_dir>/master.key``."""
    return Path(settings.data_dir) / MASTER_KEY_FILE


def load_keyring(settings: Settings, *, create: bool = True) -> Keyring:
    """The master keyring of this installation.

    ``STEAD_MASTER_KEY`` (current) plus ``STEAD_PREVIOUS_MASTER_KEYS`` (comma-separated, decrypt
    only); else the key file, created with a random key on first start outside production when
    ``create`` (False when the database already holds data encrypted under a master key: a new
    key could not read it).

    Raises:
        MasterKeyError: with neither the setting nor the file, in production or without
            ``create``; a key that is not base64 of 32 bytes, or (in production) not random;
            previous keys without a current one.
    """
    production = settings.environment == "production"
    configured = settings.master_key.get_secret_value()
    previous = [k for k in settings.previous_master_keys.get_secret_value().split(",") if k.strip()]
    if configured:
        keys = [parse_key(configured, source="STEAD_MASTER_KEY", production=production)]
        keys += [parse_key(k, source="STEAD_PREVIOUS_MASTER_KEYS") for k in previous]
        return Keyring(keys)
    if previous:
        raise MasterKeyError("STEAD_PREVIOUS_MASTER_KEYS is set but STEAD_MASTER_KEY is not")
    path = key_file_path(settings)
    if not path.exists():
        if not create:
            raise MasterKeyError(
                "the database holds secrets encrypted under a master key, but "
                f"STEAD_MASTER_KEY is not set and the master key file {path} does not exist; "
                "restore that file (or STEAD_MASTER_KEY) from your backup: a new key cannot "
                "read the stored secrets"
            )
        if production:
            raise MasterKeyError(
                "STEAD_MASTER_KEY is not set and no master key file exists in the data "
                f"directory ({path}); set it to `openssl rand -base64 32`"
            )
        _create_key_file(path)
    return Keyring(read_key_file(path, production=production), path=path)


def attach_keyring(factory: sessionmaker[Session], keyring: Keyring) -> None:
    """Give every session of ``factory`` the keyring (in ``Session.info``)."""
    factory.configure(info={**factory.kw.get("info", {}), _INFO_KEY: keyring})


def keyring_of(session: Session) -> Keyring:
    """The keyring attached to the session's factory by :func:`attach_keyring`.

    Raises:
        RuntimeError: the session's factory has no keyring.
    """
    keyring = session.info.get(_INFO_KEY)
    if not isinstance(keyring, Keyring):
        raise RuntimeError("this session has no master keyring; see attach_keyring")
    return keyring


def _context(project_id: str, secret_name_key: str, version: int) -> bytes:
    """Associated data binding a ciphertext and its wrapped key to one version of one secret."""
    return json.dumps(["stead hosted secret v1", project_id, secret_name_key, version]).encode()


def _wrap(master: AESGCM, data_key: bytes, context: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + master.encrypt(nonce, data_key, context)


def _unwrap(master: AESGCM, wrapped: bytes, context: bytes) -> bytes:
    return master.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], context)


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _current_master(session: Session) -> tuple[str, AESGCM]:
    """The keyring's current master key, for a value about to be written."""
    if _is_postgresql(session):
        # Conflicts with the rotation's EXCLUSIVE lock: the key chosen cannot go stale.
        session.execute(text("LOCK TABLE hosted_secret_versions IN ROW EXCLUSIVE MODE"))
    return keyring_of(session).current()


def _agent_context(agent_id: str) -> bytes:
    """Associated data binding an agent's sealed client secret to that agent."""
    return json.dumps(["stead agent client secret v1", agent_id]).encode()


def seal_agent_secret(session: Session, *, agent: Agent, value: str) -> None:
    """Encrypt ``value`` as ``agent``'s client secret (flushed agent; the caller flushes after).

    Envelope encryption as for hosted secrets: a fresh AES-256-GCM data key, wrapped by the
    current master key; both bound to the agent's id. The value is remembered for log redaction.
    """
    master_id, master = _current_master(session)
    context = _agent_context(agent.id)
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(NONCE_BYTES)
    agent.secret_key_id = master_id
    agent.secret_wrapped_key = _wrap(master, data_key, context)
    agent.secret_nonce = nonce
    agent.secret_ciphertext = AESGCM(data_key).encrypt(nonce, value.encode(), context)
    remember_secret(value)


def open_agent_secret(session: Session, *, agent: Agent) -> str | None:
    """The client secret sealed by :func:`seal_agent_secret`, or None when the agent has none.

    Raises:
        SecretUnreadable: the master key that wrapped it is unknown, or the row fails
            authentication (the message names the agent, never a value).
    """
    if agent.secret_key_id is None or agent.secret_wrapped_key is None:
        return None
    assert agent.secret_nonce is not None and agent.secret_ciphertext is not None
    context = _agent_context(agent.id)
    master = keyring_of(session).cipher(agent.secret_key_id)
    try:
        data_key = _unwrap(master, agent.secret_wrapped_key, context)
        value = AESGCM(data_key).decrypt(agent.secret_nonce, agent.secret_ciphertext, context)
    except InvalidTag:
        raise SecretUnreadable(
            f"the client secret of agent {agent.id} failed authentication"
        ) from None
    secret = value.decode()
    remember_secret(secret)
    return secret


def find(
    session: Session, *, project_id: str, name: str, for_update: bool = False
) -> HostedSecret | None:
    """The project's hosted secret called ``name`` (case-insensitive, NFC), or None;
    ``for_update`` locks its row on PostgreSQL until the transaction ends."""
    key = lookup_key(name)
    if key is None:
        return None
    query = named_in_project(HostedSecret)
    params = {"project_id": project_id, "name_key": key}
    return session.scalar(query.with_for_update() if for_update else query, params)


def store_value(session: Session, *, secret: HostedSecret, value: str) -> HostedSecretVersion:
    """Encrypt ``value`` as the next version of ``secret`` (which must have been flushed) and
    make it the latest. Flushes.

    The value is remembered for log redaction (``stead.logs.remember_secret``).
    """
    master_id, master = _current_master(session)
    version = secret.version + 1
    context = _context(secret.project_id, secret.name_key, version)
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(NONCE_BYTES)
    row = HostedSecretVersion(
        secret_id=secret.id,
        version=version,
        key_id=master_id,
        wrapped_key=_wrap(master, data_key, context),
        nonce=nonce,
        ciphertext=AESGCM(data_key).encrypt(nonce, value.encode(), context),
    )
    secret.version = version
    session.add(row)
    session.flush()
    remember_secret(value)
    return row


def _open(session: Session, secret: HostedSecret, row: HostedSecretVersion) -> str:
    context = _context(secret.project_id, secret.name_key, row.version)
    master = keyring_of(session).cipher(row.key_id)
    try:
        data_key = _unwrap(master, row.wrapped_key, context)
        value = AESGCM(data_key).decrypt(row.nonce, row.ciphertext, context).decode()
    except InvalidTag:
        raise SecretUnreadable(
            f"hosted secret {secret.name!r} version {row.version} failed authentication"
        ) from None
    remember_secret(value)
    return value


def decrypt(session: Session, *, secret: HostedSecret) -> str:
    """The value of the latest version of ``secret``.

    Raises:
        SecretUnreadable: the master key that wrapped it is unknown, or the row fails
            authentication.
    """
    row = session.scalars(
        select(HostedSecretVersion).where(
            HostedSecretVersion.secret_id == secret.id,
            HostedSecretVersion.version == secret.version,
        )
    ).one()
    return _open(session, secret, row)


def read_value(session: Session, *, project_id: str, name: str) -> str:
    """Decrypt the latest version of the project's hosted secret ``name`` (case-insensitive).

    ``session`` must come from a factory given the keyring (:func:`attach_keyring`; the app's
    sessions have it).

    Raises:
        NotFound: the project has no hosted secret of that name.
        SecretUnreadable: see :func:`decrypt`.
    """
    key = lookup_key(name)
    found = None
    if key is not None:
        found = session.execute(
            select(HostedSecret, HostedSecretVersion)
            .join(
                HostedSecretVersion,
                (HostedSecretVersion.secret_id == HostedSecret.id)
                & (HostedSecretVersion.version == HostedSecret.version),
            )
            .where(HostedSecret.project_id == project_id, HostedSecret.name_key == key)
        ).first()
    if found is None:
        raise NotFound(f"No hosted secret named {name!r} in the project")
    return _open(session, *found)


def rewrap_all(session: Session, keyring: Keyring) -> int:
    """Re-wrap every data key (hosted secret versions and agents' client secrets) not wrapped by
    the keyring's current master key under it.

    Takes PostgreSQL's EXCLUSIVE lock on the version table (readers go on; writers wait for the
    commit). Values and data keys stay as they are; only ``key_id`` and ``wrapped_key`` change.

    Returns:
        The number of values re-wrapped.
    """
    if _is_postgresql(session):
        session.execute(text("LOCK TABLE hosted_secret_versions IN EXCLUSIVE MODE"))
    current_id, current = keyring.current()
    rows = session.execute(
        select(HostedSecretVersion, HostedSecret.project_id, HostedSecret.name_key)
        .join(HostedSecret, HostedSecret.id == HostedSecretVersion.secret_id)
        .where(HostedSecretVersion.key_id != current_id)
    ).all()
    for row, project_id, secret_name_key in rows:
        context = _context(project_id, secret_name_key, row.version)
        try:
            data_key = _unwrap(keyring.cipher(row.key_id), row.wrapped_key, context)
        except InvalidTag:
            raise SecretUnreadable(
                f"hosted secret version {row.id} failed authentication; nothing was re-wrapped"
            ) from None
        row.wrapped_key = _wrap(current, data_key, context)
        row.key_id = current_id
    agents = list(
        session.scalars(
            select(Agent).where(Agent.secret_key_id.is_not(None), Agent.secret_key_id != current_id)
        )
    )
    for agent in agents:
        assert agent.secret_key_id is not None and agent.secret_wrapped_key is not None
        context = _agent_context(agent.id)
        try:
            data_key = _unwrap(
                keyring.cipher(agent.secret_key_id), agent.secret_wrapped_key, context
            )
        except InvalidTag:
            raise SecretUnreadable(
                f"the client secret of agent {agent.id} failed authentication; "
                "nothing was re-wrapped"
            ) from None
        agent.secret_wrapped_key = _wrap(current, data_key, context)
        agent.secret_key_id = current_id
    record_master_check(session, keyring)
    session.flush()
    return len(rows) + len(agents)


def record_master_check(session: Session, keyring: Keyring) -> None:
    """Record the keyring's current key as the database's master key (its key check value)."""
    row = session.get(KeyCheck, MASTER)
    if row is None:
        session.add(KeyCheck(name=MASTER, check_value=keyring.current_check))
    elif row.check_value != keyring.current_check:
        row.check_value = keyring.current_check


@dataclass(frozen=True)
class Rotation:
    """The outcome of :func:`rotate_master_key`: the new current key id and how many data keys
    were re-wrapped under it."""

    key_id: str
    rewrapped: int


def rotate_master_key(settings: Settings, factory: sessionmaker[Session]) -> Rotation:
    """Re-wrap every data key under a new master key, in one transaction.

    With the key file: generate a key, write it in front of the file's keys, re-wrap and commit,
    then leave only the new key in the file. If the transaction fails, the file keeps every key
    and all versions stay readable; run the rotation again.

    With ``STEAD_MASTER_KEY``: re-wrap under that key every version wrapped by one of
    ``STEAD_PREVIOUS_MASTER_KEYS`` (the operator sets the new key and lists the old one first;
    see docs/decisions.md).

    Raises:
        MasterKeyError: the master key configuration is unusable.
        SecretUnreadable: a version's master key is unknown or its row fails authentication.
    """
    keyring = load_keyring(settings)
    path = None if settings.master_key.get_secret_value() else key_file_path(settings)
    if path is not None:
        new_key = AESGCM.generate_key(bit_length=256)
        write_key_file(path, [new_key, *read_key_file(path)])
        keyring = Keyring.from_file(path)
    with session_scope(factory, write=True) as session:
        count = rewrap_all(session, keyring)
    if path is not None:
        write_key_file(path, [new_key])
    return Rotation(key_id=keyring.current_id, rewrapped=count)
