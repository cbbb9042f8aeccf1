"""Wire models of secret references and hosted secrets (docs/api.md, Secrets)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr

from stead.wire import CI, Description, Name, Text, Timestamp, WireModel, storable

#: Path rule of a secret reference name (docs/api.md, Secrets: ``^[\w()-]{1,128}$``), with ``\w``
#: read as in DPC's Java back end: ASCII letters, digits and ``_``.
SECRET_REFERENCE_NAME = r"^[A-Za-z0-9_()-]{1,128}$"

HOSTED_STORE = "Matillion hosted"


def _hosted_alias(value: Any) -> Any:
    """``Hosted`` is Stead's name for the DPC ``Matillion hosted`` store (docs/api.md, Secrets)."""
    if isinstance(value, str) and value.casefold() == "hosted":
        return HOSTED_STORE
    return value


SecretStore = Annotated[
    Literal["AWS", "Azure", "Matillion hosted", "GCP", "Vault"], CI, BeforeValidator(_hosted_alias)
]
SecretReferenceType = Annotated[Literal["PASSWORD"], CI]


class SecretReferenceCreate(WireModel):
    """``POST /v1/projects/{projectId}/secret-references/{secretReferenceName}`` body (DPC).

    ``agentType`` names the store: ``AWS`` (Secrets Manager), ``Azure`` (Key Vault),
    ``Matillion hosted`` (alias ``Hosted``), ``GCP`` (Secret Manager), ``Vault`` (KV v2).
    ``agentId`` is optional: DPC documents the body with and without it; without it the secret
    is resolved by the agent of whichever environment uses the reference.
    """

    agent_id: str | None = Field(default=None, examples=["3f2b1c9e-5d7a-4e8b-9c1d-2a3b4c5d6e7f"])
    agent_type: SecretStore
    secret_reference_type: SecretReferenceType
    secret_name: Text = Field(min_length=1, max_length=1024, examples=["prod/finance/redshift"])
    secret_key: Text | None = Field(
        default=None, min_length=1, max_length=255, examples=["password"]
    )
    description: Description | None = None


class SecretReferenceRead(WireModel):
    """A secret reference as read back: where the secret lives, never its value."""

    name: str
    agent_id: str | None
    agent_type: str
    secret_reference_type: str
    secret_name: str
    secret_key: str | None
    description: str | None
    created_at: Timestamp
    updated_at: Timestamp


class SecretReferenceCheck(WireModel):
    """Answer of ``POST .../secret-references/{name}/check``: the store gave a value for the
    reference (the value itself is never returned)."""

    ok: Literal[True] = True
    store: str = Field(description="the reference's agentType", examples=["AWS"])
    resolved_at: Timestamp


SecretType = Annotated[Literal["PASSWORD", "PRIVATE_KEY", "JSON"], CI]

#: Largest value accepted, in UTF-8 bytes (AWS Secrets Manager's limit, 64 KiB).
VALUE_MAX_BYTES = 65536


def _check_value(value: SecretStr) -> SecretStr:
    text = value.get_secret_value()
    if not text:
        raise ValueError("must not be empty")
    if not storable(text):
        raise ValueError("must not contain NUL or unpaired surrogate characters")
    if len(text.encode()) > VALUE_MAX_BYTES:
        raise ValueError(f"must be at most {VALUE_MAX_BYTES} bytes in UTF-8")
    return value


SecretValue = Annotated[
    SecretStr,
    AfterValidator(_check_value),
    Field(
        description="The secret value (write-only): a password, a PEM private key, or a JSON "
        "object; at most 64 KiB",
        examples=["correct horse battery staple"],
    ),
]


class HostedSecretCreate(WireModel):
    """``POST /v1/projects/{projectId}/secrets`` body (docs/api.md, Secrets, hosted secrets).

    ``type``: ``PASSWORD`` (any text), ``PRIVATE_KEY`` (a PEM RSA private key, checked as for
    Snowflake key-pair authentication) or ``JSON`` (a JSON object whose keys ``secretKey``
    selects). The name shares the project's namespace with secret references.
    """

    name: Name = Field(examples=["growth-prod-private-key"])
    type: SecretType
    value: SecretValue


class HostedSecretUpdate(WireModel):
    """``PUT /v1/projects/{projectId}/secrets/{secretName}`` body: the value of a new version,
    and optionally a new type."""

    value: SecretValue
    type: SecretType | None = None


class HostedSecretRead(WireModel):
    """A hosted secret as read back: metadata only, never the value."""

    name: str
    type: str
    version: int
    created_at: Timestamp
    updated_at: Timestamp


#: The external stores a project's secret references are scoped in (``stead.secrets.scopes``).
SCOPED_STORES = ("AWS", "Vault", "Azure", "GCP")
ScopedStore = Annotated[Literal["AWS", "Vault", "Azure", "GCP"], CI]


class SecretScopeSet(WireModel):
    """One store's scope in ``PUT /v1/projects/{projectId}/secret-scopes``: the name or path
    prefixes the project's secret references may use there (``[]``: none, ``[""]``: all)."""

    store: ScopedStore
    prefixes: list[Annotated[str, Field(max_length=2048)]] = Field(
        max_length=50, examples=[["stead/3f2b1c9e-5d7a-4e8b-9c1d-2a3b4c5d6e7f/", "shared/finance/"]]
    )


class SecretScopesUpdate(WireModel):
    """``PUT /v1/projects/{projectId}/secret-scopes`` body: the stores listed get exactly their
    prefixes; a store left out goes back to the project's default prefix."""

    scopes: list[SecretScopeSet] = Field(max_length=len(SCOPED_STORES) * 2)


class SecretScopeEntry(WireModel):
    """One store's scope as read back; ``default`` is true while no admin has set it."""

    store: str = Field(examples=["AWS"])
    prefixes: list[str]
    default: bool


class SecretScopesRead(WireModel):
    """A project's scope in every external store, and its secret references that now lie
    outside it (they answer 403 until the scope or the reference changes)."""

    scopes: list[SecretScopeEntry]
    out_of_scope: list[str] = Field(description="names of the project's secret references")
