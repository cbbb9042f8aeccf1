"""Where client commands find the server and their credentials.

In order, the first that gives a value wins: the ``--url`` / ``--client-id`` /
``--client-secret`` flags, the ``STEAD_URL`` / ``STEAD_CLIENT_ID`` / ``STEAD_CLIENT_SECRET``
environment variables, then the profile file ``config.toml`` in the user's config directory
(``~/.config/stead`` on Linux, honouring ``XDG_CONFIG_HOME``), which ``stead login`` writes
with mode 0600::

    [profiles.default]
    url = "https://stead.example.com"
    client_id = "..."
    client_secret = "..."

A person's login (``stead login --email`` or ``--sso``) keeps their CLI grant's tokens
instead of client credentials; the refresh token changes with every refresh, which rewrites
the file under a lock (:func:`profile_lock`)::

    [profiles.default]
    url = "https://stead.example.com"
    refresh_token = "..."
    access_token = "..."
    expires_at = "1796560000"

API client credentials from flags or the environment come before a stored login.
``--profile`` (or ``STEAD_PROFILE``) picks another profile than ``default``.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from filelock import FileLock

FIELDS = ("url", "client_id", "client_secret", "refresh_token", "access_token", "expires_at")


class ConfigError(ValueError):
    """The configuration is incomplete or the profile file cannot be read."""


@dataclass(frozen=True)
class ClientConfig:
    """The server URL and the credentials a command uses: an API client's ``client_id`` and
    ``client_secret``, or a person's stored login (``refresh_token``, and the last
    ``access_token`` with its ``expires_at``, Unix seconds)."""

    url: str
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    access_token: str | None = None
    expires_at: float | None = None


def config_file() -> Path:
    """The profile file: ``<user config dir>/stead/config.toml``."""
    return platformdirs.user_config_path("stead") / "config.toml"


def read_profiles(path: Path) -> dict[str, dict[str, str]]:
    """Every profile of the file at ``path`` (none when the file does not exist).

    Raises:
        ConfigError: the file is not valid TOML.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    profiles = data.get("profiles", {})
    return {
        str(name): {k: str(v) for k, v in values.items() if k in FIELDS}
        for name, values in profiles.items()
        if isinstance(values, dict)
    }


def _toml_string(value: str) -> str:
    """A TOML basic string (TOML 1.0 section "String")."""
    out = []
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def write_profile(path: Path, name: str, values: dict[str, str]) -> None:
    """Set profile ``name`` to ``values`` in the file at ``path``, keeping the other profiles.

    The file is replaced atomically and is readable by its owner only (0600); its directory is
    created 0700 when missing.
    """
    profiles = read_profiles(path)
    profiles[name] = {k: values[k] for k in FIELDS if k in values}
    lines = []
    for profile, entries in profiles.items():
        lines.append(f"[profiles.{_toml_string(profile)}]")
        lines += [f"{k} = {_toml_string(v)}" for k, v in entries.items()]
        lines.append("")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".toml")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("\n".join(lines))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def profile_lock(path: Path) -> FileLock:
    """An exclusive lock of the profile file at ``path`` (a ``.lock`` file beside it, 0600),
    held while a stored login is refreshed so that two commands never spend the same refresh
    token (a used one presented again revokes the login)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return FileLock(path.with_name(path.name + ".lock"), mode=0o600)


def resolve(
    *,
    url: str | None,
    client_id: str | None,
    client_secret: str | None,
    profile: str,
    path: Path | None = None,
) -> ClientConfig:
    """Complete the values given by flags or environment with the profile file's: API client
    credentials when any are given or stored, else the profile's stored login (when ``url``,
    if given, is the profile's).

    Raises:
        ConfigError: a value is still missing (the message says how to give it), or the file
            cannot be read.
    """
    given = {"url": url, "client_id": client_id, "client_secret": client_secret}
    if any(not v for v in given.values()):
        stored = read_profiles(path or config_file()).get(profile, {})
        login = stored.get("refresh_token")
        if login and not client_id and not client_secret and url in (None, stored.get("url")):
            expires = stored.get("expires_at", "")
            return ClientConfig(
                url=stored.get("url", ""),
                refresh_token=login,
                access_token=stored.get("access_token") or None,
                expires_at=float(expires) if expires.replace(".", "", 1).isdigit() else None,
            )
        given = {k: v or stored.get(k) for k, v in given.items()}
    missing = [k for k, v in given.items() if not v]
    if missing:
        flags = ", ".join("--" + k.replace("_", "-") for k in missing)
        raise ConfigError(
            f"missing {flags}: pass the flag, set STEAD_{missing[0].upper()}, "
            f"or run `stead login` (profile {profile!r}; `--sso` or `--email` logs you in "
            "as yourself)"
        )
    return ClientConfig(
        url=str(given["url"]),
        client_id=str(given["client_id"]),
        client_secret=str(given["client_secret"]),
    )
