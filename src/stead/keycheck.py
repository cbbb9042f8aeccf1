"""The keys a database depends on: a server runs only with the master key and signing key its
data was written with (docs/operations.md, "Keys").

The database keeps a key check value of each key (:class:`stead.secrets.models.KeyCheck`, an
HMAC under the key of a fixed label: it tells keys apart and reveals nothing of them), written
the first time a server starts on it. On every later start, :func:`verify_keys` loads the keys
without creating a missing key file (a new key could not read the stored secrets) and compares
their check values with the recorded ones. A database written before check values existed is
checked against the master key ids its encrypted rows name. ``/readyz`` repeats the comparison
(:func:`readiness_problem`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stead.agents.models import Agent
from stead.db import make_sessionmaker, session_scope
from stead.identity.keys import KEY_FILE, SIGNING, load_signing_key
from stead.secrets.models import HostedSecretVersion, KeyCheck, key_check_value
from stead.secrets.store import MASTER, Keyring, key_file_path, load_keyring, record_master_check
from stead.settings import Settings


class KeyCheckError(RuntimeError):
    """A configured key is not the one the database's data depends on. The message names the
    key, where it was looked for and how to restore it; never the key."""


@dataclass(frozen=True)
class Keys:
    """The verified keys of a server: the token signing key and the master keyring."""

    signing_key: bytes
    keyring: Keyring


def _signing_source(settings: Settings) -> str:
    if settings.signing_key.get_secret_value():
        return "STEAD_SIGNING_KEY"
    return f"the signing key file {settings.data_dir / KEY_FILE}"


def _master_source(settings: Settings) -> str:
    if settings.master_key.get_secret_value():
        return "STEAD_MASTER_KEY (with STEAD_PREVIOUS_MASTER_KEYS)"
    return f"the master key file {key_file_path(settings)}"


def _wrapping_key_ids(session: Session) -> set[str]:
    """The ids of the master keys that wrapped the stored hosted secrets and agent secrets."""
    ids = set(session.scalars(select(HostedSecretVersion.key_id).distinct()))
    ids.update(
        key for key in session.scalars(select(Agent.secret_key_id).distinct()) if key is not None
    )
    return ids


def _verify(session: Session, settings: Settings) -> Keys:
    recorded = {row.name: row.check_value for row in session.scalars(select(KeyCheck))}
    wrapping = _wrapping_key_ids(session)
    signing_key = load_signing_key(settings, create=SIGNING not in recorded)
    keyring = load_keyring(settings, create=MASTER not in recorded and not wrapping)
    signing_check = key_check_value(signing_key, SIGNING)
    if recorded.get(SIGNING, signing_check) != signing_check:
        source = _signing_source(settings)
        raise KeyCheckError(
            f"{source} is not the signing key this database's tokens were signed with (its "
            f"key check value differs); restore the original key to {source} from your "
            "backup, or replace the key on purpose with `stead admin replace-signing-key` "
            "(every token issued so far stops working)"
        )
    if MASTER in recorded and not keyring.matches(recorded[MASTER]):
        source = _master_source(settings)
        raise KeyCheckError(
            f"{source} does not hold the master key this database's secrets are encrypted "
            f"under (its key check value differs); restore the original key to {source} from "
            "your backup (while rotating, keep the old key in STEAD_PREVIOUS_MASTER_KEYS)"
        )
    unknown = sorted(key for key in wrapping if not keyring.knows(key))
    if unknown:
        source = _master_source(settings)
        raise KeyCheckError(
            f"stored secrets are encrypted under master key id {', '.join(unknown)}, which "
            f"{source} does not hold; restore that key to {source} from your backup"
        )
    if SIGNING not in recorded:
        session.add(KeyCheck(name=SIGNING, check_value=signing_check))
    if MASTER not in recorded:
        record_master_check(session, keyring)
    return Keys(signing_key=signing_key, keyring=keyring)


def verify_keys(settings: Settings, engine: Engine) -> Keys:
    """Load the signing key and master keyring and check them against the database (module
    docstring); record the check values of a database that has none yet.

    The database must be migrated. Servers starting together record once: the one that loses the
    race reads the winner's values and compares.

    Raises:
        SigningKeyError: the signing key is missing or unusable (``stead.identity.keys``).
        MasterKeyError: the master key is missing or unusable (``stead.secrets.store``).
        KeyCheckError: a key is not the one the database's data depends on.
    """
    factory = make_sessionmaker(engine)
    try:
        with session_scope(factory, write=True) as session:
            return _verify(session, settings)
    except IntegrityError:  # another server recorded first: compare with its values
        with session_scope(factory, write=True) as session:
            return _verify(session, settings)


def replace_signing_key(settings: Settings, engine: Engine) -> None:
    """Record the configured signing key as the database's (tokens signed with the previous one
    are refused from then on).

    Raises:
        SigningKeyError: the signing key is unusable (``load_signing_key``; a missing key file
            is created outside production).
    """
    key = load_signing_key(settings)
    with session_scope(make_sessionmaker(engine), write=True) as session:
        row = session.get(KeyCheck, SIGNING)
        if row is None:
            session.add(KeyCheck(name=SIGNING, check_value=key_check_value(key, SIGNING)))
        else:
            row.check_value = key_check_value(key, SIGNING)


def readiness_problem(conn: Connection, *, signing_key: bytes, keyring: Keyring) -> str | None:
    """Why this server must not take traffic, or None: a recorded key check value that its
    signing key or master keyring does not match (the keys were changed under a running
    server, or it was started without :func:`verify_keys`); with no master key recorded, a
    stored secret wrapped by a master key it does not hold."""
    rows = conn.execute(select(KeyCheck.name, KeyCheck.check_value))
    recorded = {name: value for name, value in rows}
    if SIGNING in recorded and recorded[SIGNING] != key_check_value(signing_key, SIGNING):
        return "the signing key does not match the database's"
    unreadable = "the master key does not match the database's; stored secrets cannot be read"
    if MASTER in recorded:
        return None if keyring.matches(recorded[MASTER]) else unreadable
    known = keyring.known_ids
    for column in (HostedSecretVersion.key_id, Agent.secret_key_id):
        stray = conn.execute(select(column).where(column.not_in(known)).limit(1)).first()
        if stray is not None and stray[0] is not None and not keyring.knows(stray[0]):
            return unreadable
    return None
