"""``stead backup`` and ``stead restore``: the installation's database and keys in one file
(:mod:`stead.backup`; docs/operations.md, "Backup and restore"). Both run where the server
runs, on its ``STEAD_DATA_DIR`` / ``STEAD_DATABASE_URL``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

PassphraseStdin = Annotated[
    bool,
    typer.Option(
        "--passphrase-stdin", help="read the passphrase from the first line of standard input"
    ),
]


def _passphrase(from_stdin: bool, *, confirm: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("passphrase", hide_input=True, confirmation_prompt=confirm))


def backup(
    file: Annotated[Path, typer.Argument(help="the backup file to write (must not exist)")],
    encrypt: Annotated[
        bool, typer.Option("--encrypt", help="encrypt to a passphrase (asked for)")
    ] = False,
    passphrase_stdin: PassphraseStdin = False,
) -> None:
    """Back up the database (SQLite, online) and the keys into FILE, mode 0600.

    With --encrypt or --passphrase-stdin the file is encrypted to a passphrase (scrypt and
    Fernet); without, it holds the master key in clear text. On PostgreSQL the file holds the
    keys only: dump the database with pg_dump as well.
    """
    from stead.backup import BackupError, create_backup, write_backup
    from stead.settings import get_settings

    settings = get_settings()
    passphrase = None
    if encrypt or passphrase_stdin:
        passphrase = _passphrase(passphrase_stdin, confirm=True)
    try:
        data, manifest = create_backup(settings, passphrase=passphrase)
        write_backup(file, data)
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    held = "database and keys" if manifest.database == "sqlite" else "keys"
    state = "encrypted" if passphrase is not None else "NOT encrypted, keep it as safe as the keys"
    typer.echo(f"wrote {file} ({len(data)} bytes; {held}; {state})")
    if manifest.database == "postgresql":
        typer.echo(
            "the PostgreSQL database is not in it: dump it with pg_dump "
            "(docs/operations.md, Backup and restore)",
            err=True,
        )


def restore(
    file: Annotated[Path, typer.Argument(help="a file written by `stead backup`")],
    force: Annotated[
        bool,
        typer.Option("--force", help="overwrite a non-empty data directory or existing database"),
    ] = False,
    passphrase_stdin: PassphraseStdin = False,
) -> None:
    """Restore a backup into the data directory (stop the server first).

    The database passes SQLite's integrity check before it is put in place. An encrypted
    backup asks for its passphrase.
    """
    from stead.backup import BackupError, is_encrypted, restore_backup
    from stead.settings import get_settings

    settings = get_settings()
    try:
        data = file.read_bytes()
    except OSError as exc:
        typer.echo(f"error: cannot read {file}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    passphrase = None
    if is_encrypted(data):
        passphrase = _passphrase(passphrase_stdin, confirm=False)
    try:
        restored = restore_backup(settings, data, passphrase=passphrase, force=force)
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    written = [str(path) for path in restored.key_files]
    if restored.database is not None:
        written.insert(0, f"{restored.database} (integrity check ok)")
    typer.echo(f"restored the backup of {restored.manifest.created_at}: " + ", ".join(written))
    if restored.manifest.database == "postgresql":
        typer.echo(
            "keys only: restore the database with pg_restore "
            "(docs/operations.md, Backup and restore)",
            err=True,
        )
