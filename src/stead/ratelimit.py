"""Per-API-client rate limit (contract section 1: default 1000 requests/minute, 429 + Retry-After).

A fixed one-minute window counted in this process's memory. With several server processes each
counts on its own, so the effective limit is the setting times the number of processes.
"""

from __future__ import annotations

import math
import threading
import time

from stead.errors import TooManyRequests


class RateLimiter:
    """Counts requests per key in fixed windows of ``window_seconds``.

    Args:
        limit: requests allowed per key and window; 0 or less disables the limit.
        window_seconds: window length in seconds.
    """

    def __init__(self, limit: int, window_seconds: float = 60.0) -> None:
        self.limit = limit
        self.window = window_seconds
        self._lock = threading.Lock()
        self._current = -1
        self._counts: dict[str, int] = {}

    def hit(self, key: str) -> None:
        """Count one request for ``key``.

        Raises:
            TooManyRequests: the key is over its limit; ``Retry-After`` says when the window ends.
        """
        if self.limit <= 0:
            return
        now = time.time()
        window = int(now // self.window)
        with self._lock:
            if window != self._current:
                self._current, self._counts = window, {}
            count = self._counts.get(key, 0) + 1
            self._counts[key] = count
        if count > self.limit:
            retry_after = max(1, math.ceil((window + 1) * self.window - now))
            raise TooManyRequests(
                f"Rate limit of {self.limit} requests per {int(self.window)} s exceeded",
                headers={"Retry-After": str(retry_after)},
            )
