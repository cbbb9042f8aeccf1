"""Audit trail: ``record()`` writes one event per change in the change's transaction.

``record`` is loaded on first use, so that importing ``stead.audit.schemas`` (as the SDK does)
does not load the database layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stead.audit.service import record
else:

    def __getattr__(name: str) -> Any:
        if name == "record":
            from stead.audit.service import record

            return record
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["record"]
