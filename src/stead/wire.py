"""Shared wire types: the base model, names, timestamps and case-insensitive enums.

Rules come from contract section 1 (names, enums, timestamps, unknown fields).
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

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
    """The comparison key of a name: Unicode NFC, then case-folded (contract section 1: names)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def check_name(value: str) -> str:
    """Validate a name (contract section 1): 1-255 characters, no control characters, no ``/``,
    no leading or trailing whitespace. Never trims.

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
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in value):
        raise ValueError("must not contain control characters")
    return value


def check_no_nul(value: str) -> str:
    """Refuse NUL characters: PostgreSQL text cannot hold them, so they are bad input, not a 500.

    Raises:
        ValueError: ``value`` contains ``\\x00``.
    """
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Name = Annotated[str, Field(examples=["finance-analytics"]), AfterValidator(check_name)]
#: Free text of any length the field allows; NUL refused.
Text = Annotated[str, AfterValidator(check_no_nul)]
Description = Annotated[Text, Field(max_length=DESCRIPTION_MAX)]


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-01-15T10:30:00.123Z`` (contract section 1)."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


Timestamp = Annotated[
    datetime,
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
    Field(examples=["2026-01-15T10:30:00.123Z"]),
]


def ci_enum(*values: str) -> Any:
    """An enum type accepting ``values`` case-insensitively and returning the canonical spelling.

    Contract section 1: enums are accepted case-insensitively on input (the DPC examples send
    ``dwh``, ``redshift``, ``password``) and returned in canonical form.
    """
    canonical = {v.casefold(): v for v in values}

    def _canonicalise(value: Any) -> Any:
        if isinstance(value, str):
            return canonical.get(value.casefold(), value)
        return value

    return Annotated[Literal[values], BeforeValidator(_canonicalise)]  # type: ignore[valid-type]


Warehouse = ci_enum("SNOWFLAKE", "REDSHIFT")
AgentDeploymentType = ci_enum("HYBRID", "FULL_SAAS")
