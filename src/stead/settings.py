"""Stead's configuration: one pydantic-settings class, read from ``STEAD_*`` environment variables.

Read it through :func:`get_settings` only; nothing else in the code reads ``os.environ``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server settings.

    Attributes:
        data_dir: where the SQLite database and the signing-key file live (default: the user's
            data directory, e.g. ``~/.local/share/stead``).
        database_url: SQLAlchemy URL; empty means ``sqlite:///<data_dir>/stead.db``. PostgreSQL:
            ``postgresql+psycopg://user:pass@host:port/db``.
        signing_key: HMAC key for access tokens (HS256); empty means a 0600 file
            ``<data_dir>/signing.key`` generated on first start.
        token_ttl_seconds: lifetime of an access token (contract section 1: 1800 s).
        github_api_url: GitHub REST base URL (GitHub Enterprise Server: ``https://HOST/api/v3``).
        upstream_timeout_seconds: timeout for calls to git providers.
        rate_limit_per_minute: requests per API client per minute (contract section 1).
        environment: ``development`` or ``production``; production refuses a missing signing key.
    """

    model_config = SettingsConfigDict(env_prefix="STEAD_", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("stead")))
    database_url: str = ""
    signing_key: SecretStr = SecretStr("")
    token_ttl_seconds: int = 1800
    github_api_url: str = "https://api.github.com"
    upstream_timeout_seconds: float = 10.0
    rate_limit_per_minute: int = 1000
    environment: Literal["development", "production"] = "development"
    log_level: str = "INFO"

    @property
    def effective_database_url(self) -> str:
        """The database URL in use: ``database_url`` or the SQLite file in ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'stead.db'}"


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
