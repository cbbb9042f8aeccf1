"""Per-API-client rate limit (contract section 1: default 1000 requests/minute, 429 + Retry-After).

Fixed one-minute windows. Where the count lives depends on the database:

- PostgreSQL: in the table ``rate_limit_counters``, one row per client and window, bumped by one
  ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` in autocommit, a transaction of its own
  (never the request's: a failed request still counts, and no row lock is held while the
  request runs).
  Every ``stead serve`` process and worker on that database shares the count, so the limit is
  the setting whatever the number of servers. Rows of past windows are deleted as windows pass.
- SQLite: in this process's memory. An embedded database means one server process; with
  ``--workers N`` each worker counts on its own and the effective limit is N times the setting.
"""

from __future__ import annotations

import math
import threading
import time

from sqlalchemy import BigInteger, Engine, Integer, String, bindparam, create_engine, delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, mapped_column

from stead.db import Base, utcnow
from stead.errors import TooManyRequests


class RateLimitCounter(Base):
    """Requests of one API client (or user) in one window (``window`` = epoch seconds // 60)."""

    __tablename__ = "rate_limit_counters"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    window: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(Integer)


class RateLimiter:
    """Counts requests per key in fixed windows of ``window_seconds``, in this process.

    Args:
        limit: requests allowed per key and window; 0 or less disables the limit.
        window_seconds: window length in seconds.
    """

    #: True when :meth:`hit` queries the database (and so must not run on the event loop).
    uses_database = False

    def close(self) -> None:
        """Release what the limiter holds (nothing, in memory)."""

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
        self._check(self._count(key, window), window, now)

    def _count(self, key: str, window: int) -> int:
        with self._lock:
            if window != self._current:
                self._current, self._counts = window, {}
            count = self._counts.get(key, 0) + 1
            self._counts[key] = count
        return count

    def _check(self, count: int, window: int, now: float) -> None:
        if count > self.limit:
            retry_after = max(1, math.ceil((window + 1) * self.window - now))
            raise TooManyRequests(
                f"Rate limit of {self.limit} requests per {int(self.window)} s exceeded",
                headers={"Retry-After": str(retry_after)},
            )


#: One request counted: ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING count``, built once
#: (building and cache-keying it per request cost more than the round trip).
_BUMP = (
    insert(RateLimitCounter)
    .values(
        client_id=bindparam("key"),
        window=bindparam("window"),
        count=1,
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    .on_conflict_do_update(
        index_elements=[RateLimitCounter.client_id, RateLimitCounter.window],
        set_={"count": RateLimitCounter.count + 1},
    )
    .returning(RateLimitCounter.count)
)


class SharedRateLimiter(RateLimiter):
    """A :class:`RateLimiter` whose counts live in PostgreSQL, shared by every server process.

    Raises (from :meth:`hit`) ``OperationalError`` when the database is unreachable, which the
    app answers with 503 like any other request that needs the database.
    """

    uses_database = True

    def __init__(self, engine: Engine, limit: int, window_seconds: float = 60.0) -> None:
        super().__init__(limit, window_seconds)
        self.engine = engine
        # A pool of its own, in autocommit (one statement is its own transaction: no
        # BEGIN/COMMIT) and without a liveness ping at checkout: the bump is a single round trip.
        # A pooled connection that died (a database restart) is found by the bump itself,
        # which is then retried once on a new connection.
        self._bumps = create_engine(
            engine.url, pool_size=5, max_overflow=10, isolation_level="AUTOCOMMIT"
        )

    def close(self) -> None:
        """Close the limiter's own connections."""
        self._bumps.dispose()

    def _count(self, key: str, window: int) -> int:
        params = {"key": key, "window": window, "now": utcnow()}
        try:
            with self._bumps.connect() as conn:
                count = int(conn.execute(_BUMP, params).scalar_one())
        except OperationalError as exc:
            if not exc.connection_invalidated:
                raise
            with self._bumps.connect() as conn:
                count = int(conn.execute(_BUMP, params).scalar_one())
        with self._lock:
            new_window, self._current = window != self._current, window
        if new_window:
            with self.engine.begin() as conn:
                conn.execute(delete(RateLimitCounter).where(RateLimitCounter.window < window - 1))
        return count


def make_rate_limiter(engine: Engine, limit: int) -> RateLimiter:
    """The limiter for ``engine``: shared through the database on PostgreSQL, in memory on
    SQLite (module docstring)."""
    if engine.dialect.name == "postgresql":
        return SharedRateLimiter(engine, limit)
    return RateLimiter(limit)
