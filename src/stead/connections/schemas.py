"""Wire models of data-platform connections (docs/api.md, Connections)."""

from __future__ import annotations

from typing import Annotated, Literal

from stead.wire import CI, Name, Timestamp, Warehouse, WireModel

PlatformConnectionType = Annotated[Literal["DWH"], CI]
AuthType = Annotated[Literal["KEY_PAIR", "PASSWORD"], CI]


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
