"""Amazon Redshift: connection properties and their checks (contract section 4, DPC fields).

Required ``url`` (host name), ``port``, ``username``, ``password``, ``defaultDatabase``;
optional ``defaultSchema`` (default ``public``), ``useSsl`` (default ``true``),
``defaultStorageLocation`` (an S3 bucket); ``password`` is sensitive.
"""

from __future__ import annotations

import re

from stead.warehouses import WarehouseSpec

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# General-purpose S3 bucket names: 3-63 characters, lower-case letters, digits, '.' and '-',
# starting and ending with a letter or digit (AWS "Bucket naming rules").
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def normalise_host(value: str) -> str:
    """Check that ``value`` is a bare host name (RFC 1123 labels, at most 253 characters).

    Raises:
        ValueError: a scheme, port, path or character a host name cannot hold.
    """
    if "://" in value:
        raise ValueError(
            "must be a host name without a scheme, e.g. "
            "examplecluster.abc123xyz789.eu-west-1.redshift.amazonaws.com"
        )
    if ":" in value:
        raise ValueError("must be a host name without a port; give the port in 'port'")
    if len(value) > 253 or not _HOST.fullmatch(value):
        raise ValueError("must be a host name (letters, digits, '-' and '.'), without a path")
    return value


def normalise_port(value: str) -> str:
    """A TCP port 1-65535 written in decimal digits; returned without leading zeros.

    Raises:
        ValueError: not digits, or out of range.
    """
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ValueError("must be a whole number from 1 to 65535")
    return str(int(value))


def normalise_bool(value: str) -> str:
    """``true`` or ``false`` in any case; returned in lower case.

    Raises:
        ValueError: anything else.
    """
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise ValueError("must be true or false")
    return lowered


def normalise_bucket(value: str) -> str:
    """An S3 bucket name (AWS general-purpose bucket naming rules, simplified).

    Raises:
        ValueError: not a valid bucket name.
    """
    if not _BUCKET.fullmatch(value) or ".." in value:
        raise ValueError(
            "must be an S3 bucket name: 3-63 characters, lower-case letters, "
            "digits, '.' and '-', starting and ending with a letter or digit"
        )
    return value


SPEC = WarehouseSpec(
    name="REDSHIFT",
    auth_type="PASSWORD",
    required=("url", "port", "username", "password", "defaultDatabase"),
    optional=("defaultSchema", "useSsl", "defaultStorageLocation"),
    sensitive=frozenset({"password"}),
    defaults={"defaultSchema": "public", "useSsl": "true"},
    normalisers={
        "url": normalise_host,
        "port": normalise_port,
        "useSsl": normalise_bool,
        "defaultStorageLocation": normalise_bucket,
    },
)
