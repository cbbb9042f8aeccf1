"""The token signing key: from ``STEAD_SIGNING_KEY`` or a 0600 file in the data directory."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from stead.settings import Settings

KEY_FILE = "signing.key"
#: The shortest signing key production accepts, in bytes: an HS256 key must be at least as long
#: as the hash output (RFC 7518 section 3.2).
MIN_KEY_BYTES = 32
#: A key with fewer distinct bytes than this is refused in production as not random (the hex of
#: 32 random bytes uses all 16 hex digits; ``aaaa...`` or a repeated word uses a handful).
MIN_DISTINCT_BYTES = 8
#: The name of the signing key's row in the key check table.
SIGNING = "signing"


class SigningKeyError(RuntimeError):
    """Raised at startup when the signing key is unusable: missing or empty, or (in production)
    shorter than :data:`MIN_KEY_BYTES`. The message names where the key comes from, never the
    key."""


def load_signing_key(settings: Settings, *, create: bool = True) -> bytes:
    """Return the HS256 signing key.

    Order: ``settings.signing_key``; else ``<data_dir>/signing.key``; else (development only, and
    only with ``create``) a new random 256-bit key written to that file with mode 0600 (linked
    into place atomically, so two processes starting together agree on one key), creating a
    missing data directory with mode 0700. ``create`` is False when the database already
    records a signing key (docs/operations.md, "Keys").

    In production the key must be at least :data:`MIN_KEY_BYTES` bytes long (RFC 7518 section
    3.2) and hold at least :data:`MIN_DISTINCT_BYTES` distinct bytes; a generated key is 64
    bytes (hex of 32 random bytes).

    Raises:
        SigningKeyError: with neither the setting nor the file in production or without
            ``create``; in production, a key shorter than :data:`MIN_KEY_BYTES` bytes or not
            random; an empty key file.
    """
    configured = settings.signing_key.get_secret_value()
    if configured:
        return _strong_enough(configured.encode(), "STEAD_SIGNING_KEY", settings)
    path = Path(settings.data_dir) / KEY_FILE
    if not path.exists():
        if not create:
            raise SigningKeyError(
                "the database records a signing key (tokens were issued), but "
                f"STEAD_SIGNING_KEY is not set and the signing key file {path} does not exist; "
                "restore that file (or STEAD_SIGNING_KEY) from your backup, or start over with "
                "a new key with `stead admin replace-signing-key` (issued tokens stop working)"
            )
        if settings.environment == "production":
            raise SigningKeyError(
                "STEAD_SIGNING_KEY is not set and no signing key file exists in the data "
                f"directory ({path}); set it to at least {MIN_KEY_BYTES} random bytes, e.g. "
                "the output of `openssl rand -hex 32`"
            )
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # atomic: the first process to link wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if not key:
        raise SigningKeyError(f"signing key file {path} is empty")
    return _strong_enough(key.encode(), f"signing key file {path}", settings)


def _strong_enough(key: bytes, source: str, settings: Settings) -> bytes:
    """``key``, unless production and shorter than :data:`MIN_KEY_BYTES` bytes or with fewer
    than :data:`MIN_DISTINCT_BYTES` distinct bytes."""
    if settings.environment != "production":
        return key
    if len(key) < MIN_KEY_BYTES:
        raise SigningKeyError(
            f"{source} is {len(key)} bytes long; production needs a signing key of at least "
            f"{MIN_KEY_BYTES} bytes (RFC 7518 section 3.2), e.g. `openssl rand -hex 32`"
        )
    if len(set(key)) < MIN_DISTINCT_BYTES:
        raise SigningKeyError(
            f"{source} is not random enough for production (a repeated pattern); "
            "generate one with `openssl rand -hex 32`"
        )
    return key
