"""An environment as a dbt ``profiles.yml`` (one profile, one target), secrets left out.

Field names are dbt's (docs.getdbt.com, "Snowflake setup" and "Redshift setup"):

* Snowflake (dbt-snowflake, key-pair authentication): ``type: snowflake``, ``account``,
  ``user``, ``private_key`` (PEM text; dbt 1.7 and later), ``private_key_passphrase``,
  ``role``, ``warehouse``, ``database``, ``schema``, ``threads``.
* Redshift (dbt-redshift, password authentication): ``type: redshift``, ``host``, ``port``,
  ``user``, ``password``, ``dbname``, ``schema``, ``sslmode`` (``useSsl`` true -> ``require``,
  false -> ``disable``), ``threads``. ``defaultStorageLocation`` has no dbt field.

The profile is named after the project and its one target after the environment. A value is
written inline only when it is a plain, non-sensitive property. Everything else becomes an
``"{{ env_var('NAME') }}"`` reference, listed with its source in the file's header comment:

* a sensitive property (``privateKey``, ``passphrase``, ``password``), whatever its form;
* a property given as a secret reference or hosted secret (``{"secretName": ...}``);
* a field dbt requires that the environment leaves out (Snowflake's ``warehouse``,
  ``database``, ``schema``).

``NAME`` is ``STEAD_<PROJECT>__<ENVIRONMENT>__<DBT FIELD>`` in upper case, so profiles of
several projects and environments can live in one ``profiles.yml`` and one shell: each name
folded to ASCII letters and digits, other runs of characters written ``_`` (project
``finance-analytics``, environment ``prod-eu`` -> ``STEAD_FINANCE_ANALYTICS__PROD_EU__PASSWORD``);
a single ``_`` never doubles inside a part, so the ``__`` between the parts keeps two projects or
environments apart. A name with no ASCII letter or digit is written ``X`` and the first 8 hex
digits of its SHA-256. A plain value that holds Jinja markers (``{{``, ``{%``, ``{#``) is
written as a Jinja string literal, since dbt renders every profile value as a template.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml

from stead.warehouses import StoredValue
from stead.wire import CI

ProfileFormat = Annotated[Literal["dbt"], CI]
"""The profile formats ``GET .../profile?format=`` serves (any case on input)."""
MEDIA_TYPE = "application/yaml"
"""The response's media type (RFC 9512)."""
THREADS = 4
"""``threads`` of the target (dbt's default is 1; its Redshift setup example shows 4)."""

_JINJA_MARKERS = ("{{", "{%", "{#")


@dataclass(frozen=True)
class _Field:
    """One dbt field: the environment property it comes from and how it is written."""

    dbt: str
    source: str
    sensitive: bool = False
    required: bool = True
    number: bool = False


_SNOWFLAKE = (
    _Field("account", "account"),
    _Field("user", "username"),
    _Field("private_key", "privateKey", sensitive=True),
    _Field("private_key_passphrase", "passphrase", sensitive=True, required=False),
    _Field("role", "defaultRole", required=False),
    _Field("warehouse", "defaultWarehouse"),
    _Field("database", "defaultDatabase"),
    _Field("schema", "defaultSchema"),
)
_REDSHIFT = (
    _Field("host", "url"),
    _Field("port", "port", number=True),
    _Field("user", "username"),
    _Field("password", "password", sensitive=True),
    _Field("dbname", "defaultDatabase"),
    _Field("schema", "defaultSchema"),
    _Field("sslmode", "useSsl"),
)
_FIELDS = {"SNOWFLAKE": _SNOWFLAKE, "REDSHIFT": _REDSHIFT}
_SSLMODE = {"true": "require", "false": "disable"}


class _Template(str):
    """A Jinja expression, written double-quoted so it reads as dbt's documentation shows it."""


class _Dumper(yaml.SafeDumper):
    pass


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    """Jinja expressions, and text with characters that are not printable (YAML 1.1 takes
    U+2028 and U+2029 for line breaks), double-quoted with escapes; other text as PyYAML
    chooses."""
    style = '"' if isinstance(value, _Template) or not value.isprintable() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(_Template, _represent_text)
_Dumper.add_representer(str, _represent_text)


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Z0-9]+", "_", ascii_name.upper()).strip("_")
    if slug:
        return slug
    digest = hashlib.sha256(unicodedata.normalize("NFC", name).encode()).hexdigest()
    return "X" + digest[:8].upper()


def env_var_name(project: str, environment: str, field: str) -> str:
    """The environment variable that carries dbt field ``field`` (``password``,
    ``private_key`` ...) of ``environment`` in ``project``:
    ``STEAD_<PROJECT>__<ENVIRONMENT>__<FIELD>`` (see the module docstring)."""
    return f"STEAD_{_slug(project)}__{_slug(environment)}__{field.upper()}"


def _shown(text: str) -> str:
    """``text`` quoted for a comment line: JSON, all non-ASCII escaped when any character is not
    printable (a YAML 1.1 reader takes U+2028 and U+2029 for line breaks)."""
    return json.dumps(text, ensure_ascii=not text.isprintable())


def _literal(value: str) -> str:
    if not any(marker in value for marker in _JINJA_MARKERS):
        return value
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return _Template("{{ '" + escaped + "' }}")


def _needed(field: _Field, stored: StoredValue | None) -> str:
    """What an ``env_var`` field's variable must hold and where to find it, for the header."""
    if stored is None:
        return f"{field.dbt}: the environment has no {field.source}"
    where = f"{field.dbt}: {field.source} in secret {_shown(str(stored.get('secretName')))}"
    if stored.get("secretKey"):
        where += f", key {_shown(stored['secretKey'])}"
    if field.dbt == "sslmode":
        where += " (dbt takes require or disable for true or false)"
    return where


def profiles_yml(
    *, project: str, environment: str, warehouse: str, properties: Mapping[str, StoredValue]
) -> str:
    """The dbt ``profiles.yml`` text for an environment (see the module docstring).

    Args:
        project: the project's name (the profile's name).
        environment: the environment's name (the target's name; with ``project``, part of
            every environment variable's name).
        warehouse: ``SNOWFLAKE`` or ``REDSHIFT``.
        properties: the environment's stored connection properties (docs/warehouses.md).

    Returns:
        YAML text that parses to ``{project: {"target": environment, "outputs":
        {environment: {...}}}}``, preceded by a comment naming each environment variable.
    """
    target: dict[str, Any] = {"type": warehouse.lower()}
    needed: list[tuple[str, str]] = []
    for field in _FIELDS[warehouse]:
        stored = properties.get(field.source)
        if stored is None and not field.required:
            continue
        if stored is None or field.sensitive or "secretName" in stored:
            name = env_var_name(project, environment, field.dbt)
            needed.append((name, _needed(field, stored)))
            expression = f"env_var('{name}')" + (" | as_number" if field.number else "")
            target[field.dbt] = _Template("{{ " + expression + " }}")
        elif field.number:
            target[field.dbt] = int(stored["value"])
        elif field.dbt == "sslmode":
            target[field.dbt] = _SSLMODE[stored["value"]]
        else:
            target[field.dbt] = _literal(str(stored["value"]))
    target["threads"] = THREADS
    document = {project: {"target": environment, "outputs": {environment: target}}}
    header = [
        f"# dbt profiles.yml: environment {_shown(environment)} of Stead project "
        f"{_shown(project)}.",
        "# No secret is written here; set these environment variables before running dbt:",
        *(f"#   {name}  {what}" for name, what in needed),
    ]
    body = yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False
    )
    return "\n".join(header) + "\n" + body
