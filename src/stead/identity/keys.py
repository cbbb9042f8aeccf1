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


class SigningKeyError(RuntimeError):
    """Raised at startup when the signing key is unusable: missing or empty, or (in production)
    shorter than :data:`MIN_KEY_BYTES`. The message names where the key comes from, never the
    key."""


def load_signing_key(settings: Settings) -> bytes:
    """Return the HS256 signing key.

    Order: ``settings.signing_key``; else ``<data_dir>/signing.key``; else (development only) a new
    random 256-bit key written to that file with mode 0600 (linked into place atomically, so two
    processes starting together agree on one key), creating a missing data directory with mode
    0700.

    In production the key must be at least :data:`MIN_KEY_BYTES` bytes long (RFC 7518 section
    3.2); a generated key is 64 bytes (hex of 32 random bytes).

    Raises:
        SigningKeyError: in production with neither the setting nor the file, or with a key
            shorter than :data:`MIN_KEY_BYTES` bytes; an empty key file.
    """
    configured = settings.signing_key.get_secret_value()
    if configured:
        return _strong_enough(configured.encode(), "STEAD_SIGNING_KEY", settings)
    path = Path(settings.data_dir) / KEY_FILE
    if not path.exists():
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
    """``key``, unless production and shorter than :data:`MIN_KEY_BYTES` bytes."""
    if settings.environment == "production" and len(key) < MIN_KEY_BYTES:
        raise SigningKeyError(
            f"{source} is {len(key)} bytes long; production needs a signing key of at least "
            f"{MIN_KEY_BYTES} bytes (RFC 7518 section 3.2), e.g. `openssl rand -hex 32`"
        )
    return key
