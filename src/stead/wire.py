"""Shared wire types: the base model, names, timestamps and case-insensitive enums.

Rules come from docs/api.md (names, enums, timestamps, unknown fields).
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PlainSerializer,
)
from pydantic.alias_generators import to_camel
from pydantic_core import core_schema

NAME_MAX = 255
DESCRIPTION_MAX = 2000


class WireModel(BaseModel):
    """Base of every request and response model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
        from_attributes=True,
    )


def name_key(name: str) -> str:
    """The comparison key of a name: Unicode NFC, then case-folded (docs/api.md: names)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def lookup_key(name: str) -> str | None:
    """The comparison key to look ``name`` up by, or None when no object can have that name
    (it breaks the name rules, and may hold a NUL that PostgreSQL refuses in a query)."""
    try:
        check_name(name)
    except ValueError:
        return None
    return name_key(name)


def check_name(value: str) -> str:
    """Validate a name (docs/api.md): 1-255 characters, no control characters, no ``/``,
    no leading or trailing whitespace, not ``.`` or ``..``. Never trims.

    Raises:
        ValueError: with a message saying which rule failed.
    """
    if not value:
        raise ValueError("must not be empty")
    if len(value) > NAME_MAX:
        raise ValueError(f"must be at most {NAME_MAX} characters")
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    if "/" in value:
        raise ValueError("must not contain '/'")
    if value in (".", ".."):
        # Clients remove "." and ".." path segments (RFC 3986 section 5.2.4): unaddressable.
        raise ValueError("must not be '.' or '..'")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in value):
        raise ValueError("must not contain control characters")
    return value


def storable(value: str) -> bool:
    """False for text that neither UTF-8 nor PostgreSQL can hold: NUL, unpaired surrogates."""
    return "\x00" not in value and not any(unicodedata.category(ch) == "Cs" for ch in value)


def check_text(value: str) -> str:
    """Refuse text the database cannot store (see :func:`storable`): bad input, never a 500.

    Raises:
        ValueError: ``value`` holds NUL or an unpaired surrogate.
    """
    if not storable(value):
        raise ValueError("must not contain NUL or unpaired surrogate characters")
    return value


Name = Annotated[str, Field(examples=["finance-analytics"]), AfterValidator(check_name)]
#: Free text; NUL and unpaired surrogates refused.
Text = Annotated[str, AfterValidator(check_text)]
Description = Annotated[Text, Field(max_length=DESCRIPTION_MAX)]


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-01-15T10:30:00.123Z`` (docs/api.md)."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


Timestamp = Annotated[
    datetime,
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
    Field(examples=["2026-01-15T10:30:00.123Z"]),
]


class CaseInsensitive:
    """Marker for ``Annotated[Literal[...], CaseInsensitive()]``: accept the literal's values in any
    case and return its canonical spelling.

    docs/api.md: enums are accepted case-insensitively on input (the DPC examples send
    ``dwh``, ``redshift``, ``password``) and returned in canonical form.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        canonical = {str(v).casefold(): v for v in get_args(source)}

        def fold(value: Any) -> Any:
            return canonical.get(value.casefold(), value) if isinstance(value, str) else value

        return core_schema.no_info_before_validator_function(fold, handler(source))


CI = CaseInsensitive()

Warehouse = Annotated[Literal["SNOWFLAKE", "REDSHIFT"], CI]
AgentDeploymentType = Annotated[Literal["HYBRID", "FULL_SAAS"], CI]
