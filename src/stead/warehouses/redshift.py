"""Amazon Redshift: connection properties and their checks (DPC's fields; docs/warehouses.md).

Required ``url`` (host name), ``port``, ``username``, ``password``, ``defaultDatabase``;
optional ``defaultSchema`` (default ``public``), ``useSsl`` (default ``true``),
``defaultStorageLocation`` (an S3 bucket); ``password`` is sensitive.
"""

from __future__ import annotations

import re

from stead.warehouses import WarehouseSpec

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def normalise_host(value: str) -> str:
    """Check that ``value`` is a bare host name (RFC 1123 labels, at most 253 characters).

    Raises:
        ValueError: a scheme, port, IPv6 address, path or character a host name cannot hold.
    """
    if "://" in value:
        raise ValueError(
            "must be a host name without a scheme, e.g. "
            "examplecluster.abc123xyz789.eu-west-1.redshift.amazonaws.com"
        )
    if value.count(":") > 1 or value.startswith("["):
        raise ValueError("must be a host name or an IPv4 address, not an IPv6 address")
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
    digits = value.lstrip("0")
    # Length first: int() of a very long string is slow, and refused past 4300 digits.
    if (
        not value.isascii()
        or not value.isdigit()
        or not 1 <= len(digits) <= 5
        or int(digits) > 65535
    ):
        raise ValueError("must be a whole number from 1 to 65535")
    return digits


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
    """An S3 general purpose bucket name (AWS, Amazon S3 User Guide, "General purpose bucket
    naming rules"): 3-63 characters of lower-case letters, digits, '.' and '-', beginning and
    ending with a letter or digit, no '..', not an IP address, none of the prefixes and suffixes
    Amazon S3 reserves.

    Raises:
        ValueError: a ``s3://`` URL, a path, or a name those rules refuse; each message says
            which rule.
    """
    if value.lower().startswith("s3://"):
        raise ValueError("must be the S3 bucket name alone, without s3://")
    if "/" in value:
        raise ValueError("must be an S3 bucket name without a path or prefix")
    if not _BUCKET.fullmatch(value) or ".." in value:
        raise ValueError(
            "must be an S3 bucket name: 3-63 characters, lower-case letters, "
            "digits, '.' and '-', starting and ending with a letter or digit, no '..'"
        )
    if _IPV4.fullmatch(value):
        raise ValueError("must be an S3 bucket name, not an IP address")
    for prefix in _RESERVED_PREFIXES:
        if value.startswith(prefix):
            raise ValueError(f"must be an S3 bucket name; Amazon S3 reserves the prefix {prefix}")
    for suffix in _RESERVED_SUFFIXES:
        if value.endswith(suffix):
            raise ValueError(f"must be an S3 bucket name; Amazon S3 reserves the suffix {suffix}")
    return value


SPEC = WarehouseSpec(
    name="REDSHIFT",
    auth_type="PASSWORD",
    required=("url", "port", "username", "password", "defaultDatabase"),
    optional=("defaultSchema", "useSsl", "defaultStorageLocation"),
    sensitive=frozenset({"password"}),
    defaults={"defaultSchema": "public", "useSsl": "true"},
    formats={
        "url": "the cluster's host name, without scheme, port or path",
        "port": 'a TCP port, 1-65535, as a string (`"5439"`)',
        "useSsl": "`true` or `false`, in any case, as a string",
        "defaultStorageLocation": "an S3 bucket name, without `s3://` or a path",
    },
    normalisers={
        "url": normalise_host,
        "port": normalise_port,
        "useSsl": normalise_bool,
        "defaultStorageLocation": normalise_bucket,
    },
)
