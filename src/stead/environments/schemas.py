"""Wire models of environments (docs/api.md, Environments)."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from stead.wire import CI, NAME_MAX, Description, Name, Text, Timestamp, WireModel, storable

AccessLevel = Annotated[Literal["default", "admin", "runner", "readOnly", "noAccess"], CI]


def _check_display_name(value: str) -> str:
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in value):
        raise ValueError("must not contain control characters")
    return value


DisplayName = Annotated[
    str,
    Field(min_length=1, max_length=NAME_MAX, examples=["Production"]),
    AfterValidator(_check_display_name),
]


def check_keys(value: Any) -> Any:
    """Refuse mapping keys that cannot be stored (NUL, unpaired surrogates)."""
    if isinstance(value, dict) and not all(isinstance(k, str) and storable(k) for k in value):
        raise ValueError("keys must not contain NUL or unpaired surrogate characters")
    return value


class PropertyValue(WireModel):
    """One connection property (DPC ``PropertyValue``): ``{"value": "<string>"}`` or
    ``{"secretName": "<secret reference or hosted secret>", "secretKey": "<key in a JSON
    secret>"}``.

    Numbers and booleans travel as strings (``"5439"``, ``"true"``). A sensitive property given
    as a value is stored as a hosted secret and read back as ``{"secretName": "<generated>",
    "set": true}`` (plus ``fingerprint`` for a private key); ``set`` and ``fingerprint`` are
    read-only and may be sent back unchanged.
    """

    value: Text | None = Field(default=None, examples=["5439"])
    secret_name: Text | None = Field(default=None, examples=["finance-prod-redshift"])
    secret_key: Text | None = Field(default=None, examples=["password"])
    is_set: Literal[True] | None = Field(default=None, alias="set")
    fingerprint: Text | None = Field(default=None, examples=["SHA256:BPLvh/RRYDejtJtCfEAfUG..."])

    @model_validator(mode="after")
    def _one_form(self) -> PropertyValue:
        if (self.value is None) == (self.secret_name is None):
            raise ValueError('give either {"value": "..."} or {"secretName": "..."}')
        if self.value is not None and (
            self.secret_key is not None or self.is_set is not None or self.fingerprint is not None
        ):
            raise ValueError("secretKey, set and fingerprint go with secretName, not with value")
        return self

    def stored(self) -> dict[str, Any]:
        """The stored form: ``{"value": v}`` or ``{"secretName": n, "secretKey": k | None}``."""
        if self.secret_name is None:
            return {"value": self.value}
        return {"secretName": self.secret_name, "secretKey": self.secret_key}


class ConnectionOverride(WireModel):
    """The environment's credentials for its DWH connection (DPC ``connectionOverrides`` item).

    Keys of ``connectionProperties`` depend on the warehouse (docs/warehouses.md).
    """

    connection_name: Name
    connection_properties: Annotated[dict[str, PropertyValue], BeforeValidator(check_keys)]


class ConnectionOverrideUpdate(WireModel):
    """A ``connectionOverrides`` item in a PATCH, merged into the stored properties (JSON merge
    patch, RFC 7396): each property given is set, ``null`` removes an optional property (one
    with a default, such as Redshift's ``defaultSchema``, returns to it; a required property
    cannot be removed), and every property left out keeps its value, secrets included.
    ``connectionName`` is the environment's DWH connection, as on create."""

    connection_name: Name
    connection_properties: Annotated[dict[str, PropertyValue | None], BeforeValidator(check_keys)]


DefaultConnections = Annotated[
    dict[str, Annotated[dict[str, Name], BeforeValidator(check_keys)]],
    BeforeValidator(check_keys),
]
"""``{"DWH": {"<snowflake|redshift>": "<connection name>"}}``; the service checks the shape."""

_DEFAULT_CONNECTIONS_EXAMPLE = [{"DWH": {"redshift": "finance-dwh-prod"}}]


class EnvironmentCreate(WireModel):
    """``POST /v1/projects/{projectId}/environments`` body (DPC, docs/api.md, Environments)."""

    name: Name
    display_name: DisplayName | None = None
    description: Description | None = None
    default_agent_id: str = Field(examples=["3f2b1c9e-5d7a-4e8b-9c1d-2a3b4c5d6e7f"])
    default_user_access_level: AccessLevel
    default_connections: DefaultConnections = Field(examples=_DEFAULT_CONNECTIONS_EXAMPLE)
    connection_overrides: list[ConnectionOverride] = Field(min_length=1, max_length=1)


class EnvironmentUpdate(WireModel):
    """``PATCH .../environments/{environmentName}`` body: any field but ``name``; a field left
    out keeps its value.

    ``displayName: null`` resets it to the name; ``description: null`` clears it. A
    ``connectionOverrides`` item changes only the connection properties it names and keeps the
    others (JSON merge patch, RFC 7396): ``{"connectionName": "finance-dwh-prod",
    "connectionProperties": {"defaultSchema": {"value": "staging"}}}`` changes the schema alone;
    ``{"defaultSchema": null}`` returns it to its default.
    """

    name: SkipJsonSchema[Any] = None
    display_name: DisplayName | None = None
    description: Description | None = None
    default_agent_id: str | None = None
    default_user_access_level: AccessLevel | None = None
    default_connections: DefaultConnections | None = Field(
        default=None, examples=_DEFAULT_CONNECTIONS_EXAMPLE
    )
    connection_overrides: list[ConnectionOverrideUpdate] | None = Field(
        default=None, min_length=1, max_length=1
    )

    @field_validator("name", mode="before")
    @classmethod
    def _immutable_name(cls, value: Any) -> Any:
        raise ValueError("cannot be changed; it identifies the environment")

    @field_validator(
        "default_agent_id",
        "default_user_access_level",
        "default_connections",
        "connection_overrides",
        mode="before",
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value


class ConnectionOverrideRead(WireModel):
    """A connection override as read back: properties in their stored form, never a secret."""

    connection_name: str
    connection_properties: dict[str, dict[str, str | bool | None]]


class EnvironmentSummary(WireModel):
    """An item of the environment list."""

    name: str
    display_name: str
    default_agent_id: str
    default_agent_name: str
    default_user_access_level: str


class EnvironmentRead(WireModel):
    """An environment as read back (docs/api.md, Environments)."""

    name: str
    display_name: str
    description: str | None
    default_agent_id: str
    default_agent_name: str
    default_user_access_level: str
    default_connections: dict[str, dict[str, str]]
    connection_overrides: list[ConnectionOverrideRead]
    created_at: Timestamp
    updated_at: Timestamp
