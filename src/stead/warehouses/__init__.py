"""Warehouses: the connection properties each one takes, and how their values are checked.

One module per warehouse (``redshift``, ``snowflake``) declares a :class:`WarehouseSpec`;
:func:`check_properties` applies it to an environment's ``connectionProperties``, and
:func:`properties_table` writes it as the Markdown table of docs/warehouses.md and of the
OpenAPI description of ``connectionProperties``. Properties travel in their stored form:
``{"value": str}`` for a plain value or ``{"secretName": str, "secretKey": str | None}`` for a
secret reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

StoredValue = dict[str, Any]
"""A property as stored: ``{"value": str}`` or ``{"secretName": str, "secretKey": str | None}``."""


@dataclass(frozen=True)
class WarehouseSpec:
    """The connection properties of one warehouse (docs/warehouses.md).

    Attributes:
        name: the warehouse as the API spells it (``REDSHIFT``, ``SNOWFLAKE``).
        auth_type: the only ``authType`` its DWH connection takes (docs/api.md, Connections).
        required: keys that must be present.
        optional: keys that may be present.
        sensitive: keys whose value is a credential (never stored or returned in clear).
        defaults: values stored for optional keys the request leaves out.
        formats: per key, the form its value takes, in words (for the docs).
        normalisers: per key, a function that checks an inline value and returns its canonical
            form, raising ``ValueError`` with a message that never repeats the value's secret part.
    """

    name: str
    auth_type: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    sensitive: frozenset[str]
    defaults: Mapping[str, str] = field(default_factory=dict)
    formats: Mapping[str, str] = field(default_factory=dict)
    normalisers: Mapping[str, Callable[[str], str]] = field(default_factory=dict)

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key the warehouse accepts, required ones first."""
        return self.required + self.optional


def spec_for(warehouse: str) -> WarehouseSpec:
    """The spec of ``warehouse`` (``REDSHIFT`` or ``SNOWFLAKE``, as stored on a project).

    Raises:
        KeyError: an unknown warehouse (projects only hold the two above).
    """
    # Imported here: the warehouse modules import WarehouseSpec from this package.
    from stead.warehouses import redshift, snowflake

    return {redshift.SPEC.name: redshift.SPEC, snowflake.SPEC.name: snowflake.SPEC}[warehouse]


def properties_table(spec: WarehouseSpec) -> str:
    """The Markdown table of ``spec``'s properties, one row per key, required ones first.

    Columns: the property, whether it is required (or its default), the form of its value, and
    whether it may or must be held in a secret. Any property may be given as
    ``{"secretName", "secretKey"}``; a sensitive one given as ``{"value"}`` is stored as a hosted
    secret, so it is always held in one.
    """
    rows = ["| property | required | format | secret |", "|---|---|---|---|"]
    for key in spec.keys:
        if key in spec.required:
            required = "yes"
        elif key in spec.defaults:
            required = f"no (default `{spec.defaults[key]}`)"
        else:
            required = "no"
        secret = "may"
        if key in spec.sensitive:
            secret = "always (an inline value is stored as a hosted secret)"
        rows.append(f"| `{key}` | {required} | {spec.formats.get(key, 'text')} | {secret} |")
    return "\n".join(rows) + "\n"


def check_properties(
    spec: WarehouseSpec, properties: Mapping[str, StoredValue], *, path: str
) -> tuple[dict[str, StoredValue], list[str]]:
    """Check an environment's connection properties against ``spec`` (docs/warehouses.md).

    Rules: unknown keys are refused; required keys must be present; inline values must be
    non-empty and pass the key's normaliser; defaults fill in missing optional keys. Sensitive
    inline values pass through unchanged (the caller stores them as hosted secrets).

    Args:
        properties: key -> stored form (see :data:`StoredValue`).
        path: JSON path of the properties object, e.g.
            ``connectionOverrides[0].connectionProperties``; violations are ``"<path>.<key>: ..."``.

    Returns:
        ``(normalised, violations)``: the properties with canonical values and defaults added,
        and one ``"<json.path>: <message>"`` per problem (empty when everything is valid).
    """
    violations: list[str] = []
    normalised: dict[str, StoredValue] = {}
    for key, stored in properties.items():
        where = f"{path}.{key}"
        if key not in spec.keys:
            violations.append(
                f"{where}: unknown property for {spec.name}; accepted: {', '.join(spec.keys)}"
            )
            continue
        if "value" not in stored:
            normalised[key] = stored
            continue
        value = stored["value"]
        if not value:
            violations.append(f"{where}.value: must not be empty")
            continue
        normaliser = spec.normalisers.get(key)
        try:
            normalised[key] = {"value": normaliser(value) if normaliser else value}
        except ValueError as exc:
            violations.append(f"{where}.value: {exc}")
    for key in spec.required:
        if key not in properties:
            violations.append(f"{path}.{key}: required")
    for key, default in spec.defaults.items():
        if key not in properties:
            normalised[key] = {"value": default}
    return normalised, violations
