"""The token signing key: from ``STEAD_SIGNING_KEY`` or a 0600 file in the data directory."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from stead.settings import Settings

KEY_FILE = "signing.key"


class MissingSigningKey(RuntimeError):
    """Raised at startup in production when no signing key is configured."""


def load_signing_key(settings: Settings) -> bytes:
    """Return the HS256 signing key.

    Order: ``settings.signing_key``; else ``<data_dir>/signing.key``; else (development only) a new
    random 256-bit key written to that file with mode 0600 (linked into place atomically, so two
    processes starting together agree on one key), creating a missing data directory with mode
    0700.

    Raises:
        MissingSigningKey: in production with neither the setting nor the file.
    """
    configured = settings.signing_key.get_secret_value()
    if configured:
        return configured.encode()
    path = Path(settings.data_dir) / KEY_FILE
    if not path.exists():
        if settings.environment == "production":
            raise MissingSigningKey(
                "STEAD_SIGNING_KEY is not set and no signing key file exists in the data directory"
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
        raise MissingSigningKey(f"signing key file {path} is empty")
    return key.encode()
