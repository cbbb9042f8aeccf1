"""Wire models of the connection test (docs/api.md, Connection tests)."""

from __future__ import annotations

from pydantic import Field

from stead.wire import WireModel


class ConnectionTestError(WireModel):
    """Why a connection test failed.

    ``code`` is the warehouse's own code when it gave one: a Snowflake error number
    (``390144`` JWT token is invalid, ``390100`` incorrect user name or password, ...) or a
    PostgreSQL/Redshift SQLSTATE (``28P01`` password authentication failed, ...);
    else one of Stead's codes: ``UNREACHABLE`` (one answer and one message for every failure
    before the warehouse gave its verdict: unknown host, refused or filtered port, a server that
    is not the warehouse, a driver error of its own), ``TIMEOUT`` (no answer within the
    configured timeouts), ``PRIVATE_KEY`` (the private key cannot be used) and ``PASSPHRASE``
    (the passphrase does not open the key, or is missing). The message never holds a
    credential.
    """

    code: str = Field(examples=["390144"])
    message: str = Field(examples=["JWT token is invalid."])


class ConnectionTestResult(WireModel):
    """``POST .../environments/{environmentName}/connection-test`` answer
    (docs/api.md, Connection tests).

    ``latencyMs`` is the wall time of the attempt in milliseconds: login and query on success,
    up to the failure otherwise. ``serverVersion`` is the warehouse's version string on success.
    ``error`` is set exactly when ``ok`` is false.
    """

    ok: bool
    latency_ms: int = Field(examples=[412])
    server_version: str | None = Field(default=None, examples=["9.38.1"])
    error: ConnectionTestError | None = None
