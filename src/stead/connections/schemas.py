"""Wire models of data-platform connections (contract section 3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stead.wire import Name, Timestamp, Warehouse, WireModel, ci_enum

if TYPE_CHECKING:  # the Literal types ci_enum builds at run time are plain strings to mypy
    PlatformConnectionType = str
    AuthType = str
else:
    PlatformConnectionType = ci_enum("DWH")
    AuthType = ci_enum("KEY_PAIR", "PASSWORD")


class ConnectionCreate(WireModel):
    """``POST /v1/projects/{projectId}/data-platform-connections`` body (DPC).

    ``authProvider`` must be the project's warehouse and ``authType`` its only auth type
    (``KEY_PAIR`` for Snowflake, ``PASSWORD`` for Redshift); the service checks both.
    """

    name: Name
    platform_connection_type: PlatformConnectionType
    auth_provider: Warehouse
    auth_type: AuthType


class ConnectionRead(WireModel):
    """A connection as read back: metadata only, credentials live on environments."""

    name: str
    platform_connection_type: str
    auth_provider: str
    auth_type: str
    created_at: Timestamp
