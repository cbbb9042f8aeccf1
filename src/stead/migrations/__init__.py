"""Alembic migrations, shipped inside the package so an installed Stead can migrate itself."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from stead.db import make_private_sqlite_file

HERE = Path(__file__).parent


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at these migrations and the database ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` on the database at ``url`` (creating SQLite's folder,
    mode 0700, when it is missing, and the database file itself with mode 0600)."""
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        make_private_sqlite_file(url)
    command.upgrade(alembic_config(url), revision)
