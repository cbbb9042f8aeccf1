"""Audit trail: ``record()`` writes one event per change in the change's transaction."""

from stead.audit.service import record

__all__ = ["record"]
