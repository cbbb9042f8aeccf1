"""Retry-safe POSTs: the ``Idempotency-Key`` header (contract section 1)."""
