"""Throttling of failed sign-ins (the token endpoint and ``POST /v1/auth/login``), before any
password hash is checked.

Each failed attempt counts against the client id (or user name) it named and against the address
it came from, for one minute from the first failure; a name or address that reached its limit
is refused with 429 and ``Retry-After`` (the seconds until that minute ends) without checking
anything, so guessing costs the server no argon2 time. Successes are not counted. Counted in
this process's memory (each server process counts on its own); entries whose minute is over are
dropped once the table grows large.

Checking a secret itself runs in a worker thread under :func:`hash_limiter`'s own small limit,
outside admission control: at most that many argon2 checks run at once, and the others wait on
the event loop, holding no thread, slot or connection.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import anyio

from stead.errors import TooManyRequests

#: argon2 checks running at once per process (each takes one core for ~100 ms).
HASH_CHECKS = 2
_WINDOW = 60.0
#: Entries kept before the expired ones are dropped (a bound on memory, not on attempts).
_PRUNE_AT = 10_000


def hash_limiter(state: Any) -> anyio.CapacityLimiter:
    """The app's limit of argon2 checks at once (``state`` is ``app.state``), for
    ``anyio.to_thread.run_sync(..., limiter=...)``; made on first use, inside the event loop."""
    limiter: anyio.CapacityLimiter | None = getattr(state, "hash_limiter", None)
    if limiter is None:
        limiter = state.hash_limiter = anyio.CapacityLimiter(HASH_CHECKS)
    return limiter


class FailureThrottle:
    """Failed sign-ins per name and per address, each counted over one minute from its first.

    Args:
        per_name: failures a client id or user name may have per minute; 0 disables.
        per_address: failures an address may have per minute; 0 disables.
    """

    def __init__(self, *, per_name: int, per_address: int) -> None:
        self.per_name = per_name
        self.per_address = per_address
        self._lock = threading.Lock()
        #: (kind, key) -> (monotonic start of its minute, failures in it)
        self._failures: dict[tuple[str, str], tuple[float, int]] = {}

    def _limits(self, name: str, address: str) -> list[tuple[tuple[str, str], int]]:
        keys = ((("client", name), self.per_name), (("address", address), self.per_address))
        return [(key, limit) for key, limit in keys if limit > 0]

    def check(self, *, name: str, address: str) -> None:
        """Refuse an attempt whose name or address used up its failures for the minute.

        Raises:
            TooManyRequests: 429 with ``Retry-After``, the seconds until that minute ends.
        """
        now = time.monotonic()
        waits: dict[str, float] = {}
        with self._lock:
            for key, limit in self._limits(name, address):
                started, count = self._failures.get(key, (now, 0))
                if count >= limit and now - started < _WINDOW:
                    waits[key[0]] = started + _WINDOW - now
        if waits:
            retry_after = max(1, math.ceil(max(waits.values())))
            raise TooManyRequests(
                f"Too many failed sign-ins from this {' and this '.join(waits)}; "
                f"retry in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )

    def failed(self, *, name: str, address: str) -> None:
        """Count one failed attempt against ``name`` and ``address``."""
        now = time.monotonic()
        with self._lock:
            if len(self._failures) >= _PRUNE_AT:
                self._failures = {
                    key: value for key, value in self._failures.items() if now - value[0] < _WINDOW
                }
            for key, _limit in self._limits(name, address):
                started, count = self._failures.get(key, (now, 0))
                if now - started >= _WINDOW:
                    started, count = now, 0
                self._failures[key] = (started, count + 1)
