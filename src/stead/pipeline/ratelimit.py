"""Per-API-client rate limit (docs/api.md: default 1000 requests/minute, 429 + Retry-After).

Fixed one-minute windows. Where the count lives depends on the database:

- PostgreSQL: shared by every ``stead serve`` process and worker on that database, in the table
  ``rate_limit_counters`` (one row per client and window), so the limit is the setting whatever
  the number of servers. A process does not write that row per request: it claims a *lease*, a
  block of the window's allowance, with one ``INSERT ... ON CONFLICT DO UPDATE SET count = count
  + n ... RETURNING count`` in autocommit (a transaction of its own, never the request's: a
  failed request still counts, and no row lock is held while the request runs), and answers the
  next requests of that client from the lease, in memory, without the database. The row's count
  is therefore the allowance handed out to processes (up to the limit; beyond it, what claims
  asked for and were refused), not the requests served: processes may hold unused tokens.
  Leases shrink as the allowance runs out (:class:`SharedRateLimiter`), so that near the limit
  every request claims one token, as if counted one by one. A process that saw the count reach
  the limit refuses that client for the rest of the window without asking the database again.
  Rows of past windows are deleted as windows pass.
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
    """Allowance handed out for one API client (or user) in one window (``window`` = epoch
    seconds // 60): the sum of the leases processes claimed (module docstring)."""

    __tablename__ = "rate_limit_counters"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    window: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(Integer)


class _Lease:
    """What this process knows of one key in the current window."""

    __slots__ = ("claiming", "seen", "tokens")

    def __init__(self, tokens: int, seen: int) -> None:
        #: Requests this process may still admit without asking anyone.
        self.tokens = tokens
        #: The shared count this process saw at its last claim (the allowance handed out).
        self.seen = seen
        #: A claim of a full lease is in flight (concurrent claims then take one token each).
        self.claiming = False

    def take(self, limit: int) -> bool | None:
        """Consume one held token: True; False when the allowance is used up (refuse); None
        when nothing is held but the shared count has not reached ``limit`` (claim)."""
        if self.tokens > 0:
            self.tokens -= 1
            return True
        return None if self.seen < limit else False


class RateLimiter:
    """Counts requests per key in fixed windows of ``window_seconds``, in this process.

    Each key's window starts with the whole allowance held here (one lease of ``limit``
    tokens), so :meth:`hit_local` always decides.

    Args:
        limit: requests allowed per key and window; 0 or less disables the limit.
        window_seconds: window length in seconds.
    """

    def close(self) -> None:
        """Release what the limiter holds (nothing, in memory)."""

    def __init__(self, limit: int, window_seconds: float = 60.0) -> None:
        self.limit = limit
        self.window = window_seconds
        self._lock = threading.Lock()
        self._current = -1
        self._leases: dict[str, _Lease] = {}

    def hit_local(self, key: str) -> bool:
        """Count one request for ``key`` from what this process holds, without blocking.

        Returns:
            True when the request was counted; False when this process holds nothing for
            ``key`` and a claim is needed: call :meth:`hit` (it may query the
            database: in a worker thread). Nothing was counted then.

        Raises:
            TooManyRequests: the key is over its limit; ``Retry-After`` says when the window ends.
        """
        if self.limit <= 0:
            return True
        now = time.time()
        window = int(now // self.window)
        with self._lock:
            took = self._lease(key, window).take(self.limit)
        if took is False:
            raise self._refusal(window, now)
        return took is True

    def hit(self, key: str) -> None:
        """Count one request for ``key`` (in memory: the same as :meth:`hit_local`).

        Raises:
            TooManyRequests: the key is over its limit; ``Retry-After`` says when the window ends.
        """
        self.hit_local(key)

    def _lease(self, key: str, window: int) -> _Lease:
        """``key``'s lease in ``window``, a new window's starting empty; the lock is held."""
        if window != self._current:
            self._current, self._leases = window, {}
        lease = self._leases.get(key)
        if lease is None:
            lease = self._leases[key] = self._opening()
        return lease

    def _opening(self) -> _Lease:
        """A key's lease at its first request in a window: here, the whole allowance."""
        return _Lease(tokens=self.limit, seen=self.limit)

    def _refusal(self, window: int, now: float) -> TooManyRequests:
        retry_after = max(1, math.ceil((window + 1) * self.window - now))
        return TooManyRequests(
            f"Rate limit of {self.limit} requests per {int(self.window)} s exceeded",
            headers={"Retry-After": str(retry_after)},
        )


#: Largest lease, in tokens (requests). See :class:`SharedRateLimiter`.
MAX_LEASE = 32
#: A lease is at most ``1 / LEASE_SHARE`` of the allowance not yet handed out.
LEASE_SHARE = 16

_INSERT = insert(RateLimitCounter).values(
    client_id=bindparam("key"),
    window=bindparam("window"),
    count=bindparam("n"),
    created_at=bindparam("now"),
    updated_at=bindparam("now"),
)
#: One lease of ``n`` tokens claimed: ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING count``,
#: built once (building and cache-keying it per request cost more than the round trip).
_CLAIM = _INSERT.on_conflict_do_update(
    index_elements=[RateLimitCounter.client_id, RateLimitCounter.window],
    set_={"count": RateLimitCounter.count + _INSERT.excluded.count},
).returning(RateLimitCounter.count)


class SharedRateLimiter(RateLimiter):
    """A :class:`RateLimiter` whose allowance lives in PostgreSQL, shared by every server
    process, and is handed out to processes in leases (module docstring).

    A claim asks for ``lease_size(seen)`` tokens, ``seen`` being the shared count this process
    saw at its last claim for the key in the window (0 before any), and is granted what the
    returned count leaves under the limit: never more than ``limit`` requests per key and window
    are admitted, across all processes. The claiming request takes one token; later requests
    take the rest without the database. While one claim for a key is in flight, concurrent
    claims of this process for that key ask for one token each, so a process holds at most one
    lease's remainder.

    The price is refusing early: a process that sees the count at the limit refuses while
    another may still hold unused tokens, so a client may be refused once only ``limit -
    (processes - 1) * (lease_size(0) - 1)`` of its requests were admitted (``processes``: those
    that served it in the window; a process killed with a lease, or a claim retried after its
    connection died having committed, loses that lease's tokens as well). With the constants
    below, 3 processes: 4 of a limit of 60, 62 of 1000.

    ``MAX_LEASE = 32`` and ``LEASE_SHARE = 16`` come from a simulation of one client's requests
    over 3 processes; its figures are in docs/decisions.md ("Rate limit leases").

    Args:
        engine: the app's engine; the limiter opens a pool of its own on its URL.
        limit, window_seconds: as for :class:`RateLimiter`.

    Raises (from :meth:`hit`) ``OperationalError`` when the database is unreachable, which the
    app answers with 503 like any other request that needs the database.
    """

    def __init__(self, engine: Engine, limit: int, window_seconds: float = 60.0) -> None:
        super().__init__(limit, window_seconds)
        self._swept = -1
        # A pool of its own, in autocommit (one statement is its own transaction: no
        # BEGIN/COMMIT) and without a liveness ping at checkout: the claim is a single round
        # trip. A pooled connection that died (a database restart) is found by the claim
        # itself, which is then retried once on a new connection.
        self._claims = create_engine(
            engine.url, pool_size=5, max_overflow=10, isolation_level="AUTOCOMMIT"
        )

    def close(self) -> None:
        """Close the limiter's own connections."""
        self._claims.dispose()

    def lease_size(self, seen: int) -> int:
        """Tokens to claim when the shared count was ``seen``: ``max(1, min(MAX_LEASE, (limit
        - seen) // LEASE_SHARE))``."""
        return max(1, min(MAX_LEASE, (self.limit - seen) // LEASE_SHARE))

    def hit(self, key: str) -> None:
        """Count one request for ``key``: from this process's lease, else by claiming a new
        one in the database (blocks: run it in a worker thread).

        Raises:
            TooManyRequests: the key is over its limit; ``Retry-After`` says when the window ends.
            OperationalError: the database is unreachable (a claim is retried once when its
                pooled connection turned out dead).
        """
        if self.limit <= 0:
            return
        now = time.time()
        window = int(now // self.window)
        with self._lock:
            lease = self._lease(key, window)
            took = lease.take(self.limit)  # another thread's claim may have landed meanwhile
            if took is None:
                full, lease.claiming = not lease.claiming, True
                size = self.lease_size(lease.seen) if full else 1
                sweep, self._swept = window > self._swept, max(window, self._swept)
        if took is False:
            raise self._refusal(window, now)
        if took:
            return
        count: int | None = None
        try:
            count = self._claim({"key": key, "window": window, "n": size, "now": utcnow()})
        finally:
            with self._lock:
                if full:
                    lease.claiming = False
                if count is not None:
                    lease.seen = max(lease.seen, count)
                    lease.tokens += max(0, size - max(0, count - self.limit) - 1)
        if sweep:
            with self._claims.connect() as conn:
                conn.execute(delete(RateLimitCounter).where(RateLimitCounter.window < window - 1))
        if count - size >= self.limit:  # nothing granted: the allowance was used up before
            raise self._refusal(window, now)

    def _opening(self) -> _Lease:
        return _Lease(tokens=0, seen=0)

    def _claim(self, params: dict[str, object]) -> int:
        try:
            with self._claims.connect() as conn:
                return int(conn.execute(_CLAIM, params).scalar_one())
        except OperationalError as exc:
            if not exc.connection_invalidated:
                raise
        with self._claims.connect() as conn:
            return int(conn.execute(_CLAIM, params).scalar_one())


def make_rate_limiter(engine: Engine, limit: int) -> RateLimiter:
    """The limiter for ``engine``: shared through the database on PostgreSQL, in memory on
    SQLite (module docstring)."""
    if engine.dialect.name == "postgresql":
        return SharedRateLimiter(engine, limit)
    return RateLimiter(limit)
