"""Outbound-policy settings for tests whose fakes listen on 127.0.0.1.

Stead refuses loopback destinations, non-vendor hosts and plain-HTTP git by default; tests that
talk to their own servers allow them explicitly, as an admin of a lab installation would.
"""

from __future__ import annotations

from typing import Any

LOOPBACK: dict[str, Any] = {
    "outbound_allowed_networks": "127.0.0.0/8,::1",
    "outbound_warehouse_hosts": "127.0.0.1,localhost",
    "outbound_git_hosts": "127.0.0.1,localhost",
    "outbound_git_allow_http": True,
}
"""``Settings(**LOOPBACK)``: loopback addresses, the names 127.0.0.1 and localhost for warehouses
and git, and git over ``http://``."""

LOOPBACK_ENV = {
    f"STEAD_{name.upper()}": str(value).lower() if isinstance(value, bool) else value
    for name, value in LOOPBACK.items()
}
"""The same as ``STEAD_*`` environment variables, for a ``stead serve`` process."""
