"""Retry-safe POSTs: the ``Idempotency-Key`` header (docs/api.md)."""
