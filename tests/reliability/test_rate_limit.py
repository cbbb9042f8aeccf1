"""The rate limit's leases on PostgreSQL: limiters on separate engines of one database, the way
separate server processes share it, never admit more than the limit per key and window, refuse
at most the documented bound early, and write to the database once per lease, not per request.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, insert, select, text
from sqlalchemy.exc import OperationalError

from stead.db import utcnow
from stead.errors import TooManyRequests
from stead.pipeline.ratelimit import (
    MAX_LEASE,
    RateLimitCounter,
    RateLimiter,
    SharedRateLimiter,
    make_rate_limiter,
)
from tests.reliability.test_faults import PG_ONLY

#: The window of the limiters built here, in seconds: an hour, so that a test seldom starts
#: near a window's end and has to wait for the next one (with one-minute windows, waits of up to
#: 30 s). Windows, leases and refusals are computed alike for any length.
WINDOW = 3600


def fresh_window(needed: float = 20) -> int:
    """Sleep into the next window when fewer than ``needed`` seconds are left of this one; the
    window number."""
    left = WINDOW - time.time() % WINDOW
    if left < needed:
        time.sleep(left + 0.2)
    return int(time.time() // WINDOW)


def admit(limiter: RateLimiter, key: str) -> int:
    """One request the way ``current_actor`` counts it: 200, or 429 (with a Retry-After within
    the window)."""
    try:
        if not limiter.hit_local(key):
            limiter.hit(key)
    except TooManyRequests as exc:
        assert 1 <= int(exc.headers["Retry-After"]) <= math.ceil(WINDOW - time.time() % WINDOW) + 1
        return 429
    return 200


@contextmanager
def claims() -> Iterator[list[str]]:
    """The keys of the claims (``INSERT INTO rate_limit_counters``) sent by any engine."""
    keys: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        if statement.startswith("INSERT INTO rate_limit_counters"):
            keys.append(params["key"])

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield keys
    finally:
        event.remove(Engine, "before_cursor_execute", record)


@contextmanager
def limiters(db_url: str, processes: int, limit: int) -> Iterator[list[SharedRateLimiter]]:
    """``processes`` limiters with windows of :data:`WINDOW`, each on an engine of its own."""
    engines = [create_engine(db_url) for _ in range(processes)]
    made = [SharedRateLimiter(engine, limit, WINDOW) for engine in engines]
    try:
        yield made
    finally:
        for limiter, engine in zip(made, engines, strict=True):
            limiter.close()
            engine.dispose()


def handed_out(db_url: str, key: str) -> int:
    """The row's count for ``key`` in the current window: the allowance handed out."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(RateLimitCounter.count).where(
                        RateLimitCounter.client_id == key,
                        RateLimitCounter.window == int(time.time() // WINDOW),
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


@PG_ONLY
def test_one_limiter_admits_exactly_the_limit_then_refuses_without_the_database(
    db_url: str,
) -> None:
    with limiters(db_url, 1, 50) as (limiter,), claims() as sent:
        fresh_window()
        assert [admit(limiter, "client") for _ in range(50)] == [200] * 50
        made = len(sent)
        assert made < 50
        assert [admit(limiter, "client") for _ in range(10)] == [429] * 10
        assert len(sent) == made  # refused from memory: no write after the limit was seen
        assert handed_out(db_url, "client") == 50
        assert admit(limiter, "another") == 200


@PG_ONLY
@pytest.mark.parametrize("processes", [2, 3])
@pytest.mark.parametrize("limit", [60, 1000])
@pytest.mark.parametrize("order", ["round-robin", "random", "stale", "worst"])
def test_processes_sharing_a_database_admit_at_most_the_limit_and_at_least_the_bound(
    db_url: str, processes: int, limit: int, order: str
) -> None:
    """Round-robin admits exactly the limit; any order at least ``limit - bound``; the worst
    order (every other process served once, then never again) exactly that. In the stale order
    a process that last saw the count at its start claims a large lease near the limit and is
    granted only what is left."""
    rand = random.Random(limit * processes)
    pick: Callable[[int], int] = {
        "round-robin": lambda i: i % processes,
        "random": lambda i: rand.randrange(processes),
        "stale": lambda i: 0 if 0 < i < limit * 19 // 20 else processes - 1,
        "worst": lambda i: i if i < processes else 0,
    }[order]
    with limiters(db_url, processes, limit) as made, claims() as sent:
        bound = (processes - 1) * (made[0].lease_size(0) - 1)
        fresh_window(30)
        answers = [admit(made[pick(i)], "client") for i in range(limit + processes * MAX_LEASE)]
        admitted = answers.count(200)
        assert limit - bound <= admitted <= limit
        assert answers.index(429) >= limit - bound
        if order == "round-robin":
            assert admitted == limit
        if order == "worst":
            assert admitted == limit - bound
        assert len(sent) < limit  # one write per request was limit + processes * MAX_LEASE
        assert handed_out(db_url, "client") >= limit


@PG_ONLY
def test_concurrent_requests_in_several_processes_admit_at_most_the_limit(db_url: str) -> None:
    """Threads of one process claiming at once hold no more than one lease between them."""
    limit, processes, threads = 100, 3, 6
    with limiters(db_url, processes, limit) as made:
        bound = (processes - 1) * (made[0].lease_size(0) - 1)
        fresh_window()
        barrier = threading.Barrier(processes * threads)

        def worker(i: int) -> Counter[int]:
            barrier.wait(timeout=30)
            return Counter(admit(made[i % processes], "client") for _ in range(limit // 2))

        with ThreadPoolExecutor(max_workers=processes * threads) as pool:
            answers = sum(pool.map(worker, range(processes * threads)), Counter[int]())
        assert limit - bound <= answers[200] <= limit
        assert answers[429] == processes * threads * (limit // 2) - answers[200]


@PG_ONLY
def test_threads_claiming_at_once_hold_at_most_one_lease(db_url: str) -> None:
    """While one claim for a key is in flight, the process's other claims for it ask for one
    token each; a request whose thread hop let another's claim land first uses that lease."""
    threads = 8
    with limiters(db_url, 1, 10**9) as (limiter,), claims() as sent:
        fresh_window()
        barrier = threading.Barrier(threads)

        def request(_: int) -> int:
            barrier.wait(timeout=30)
            return admit(limiter, "client")

        with ThreadPoolExecutor(max_workers=threads) as pool:
            assert list(pool.map(request, range(threads))) == [200] * threads
        assert handed_out(db_url, "client") - threads <= MAX_LEASE - 1

        assert not limiter.hit_local("waited")  # request 1 needs a claim, hops to a thread
        assert not limiter.hit_local("waited")  # so does request 2,
        limiter.hit("waited")  # whose thread claims first;
        limiter.hit("waited")  # request 1's thread then counts from that lease
        assert sent.count("waited") == 1
        assert handed_out(db_url, "waited") == MAX_LEASE


@PG_ONLY
def test_a_huge_limit_claims_one_lease_per_max_lease_requests(db_url: str) -> None:
    with limiters(db_url, 1, 10**9) as (limiter,), claims() as sent:
        fresh_window()
        assert [admit(limiter, "client") for _ in range(1000)] == [200] * 1000
        assert len(sent) == math.ceil(1000 / MAX_LEASE)
        assert handed_out(db_url, "client") == len(sent) * MAX_LEASE


@PG_ONLY
def test_a_claim_on_a_killed_connection_is_retried_once(db_url: str) -> None:
    """A pooled connection the server dropped (a restart) fails the claim, which is sent again
    on a new connection; an unreachable database raises ``OperationalError`` (503)."""
    admin = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with limiters(db_url, 1, 1000) as (limiter,), claims() as sent:
        fresh_window()
        assert admit(limiter, "first") == 200
        with admin.connect() as conn:
            killed = conn.execute(
                text(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                    " where datname = current_database() and pid <> pg_backend_pid()"
                )
            ).scalar_one()
        assert killed >= 1
        assert admit(limiter, "second") == 200
        assert sent == ["first", "second", "second"]
        assert handed_out(db_url, "second") == limiter.lease_size(0)
    admin.dispose()

    nowhere = create_engine("postgresql+psycopg://nobody@127.0.0.1:9/x")
    unreachable = make_rate_limiter(nowhere, 10)
    assert not unreachable.hit_local("client")
    with pytest.raises(OperationalError):
        unreachable.hit("client")
    unreachable.close()
    nowhere.dispose()


@PG_ONLY
def test_a_new_window_deletes_the_rows_of_windows_before_the_last(db_url: str) -> None:
    engine = create_engine(db_url)
    window = fresh_window()
    with engine.begin() as conn:
        for key, past in (("old", window - 5), ("last", window - 1)):
            conn.execute(
                insert(RateLimitCounter).values(
                    client_id=key, window=past, count=3, created_at=utcnow(), updated_at=utcnow()
                )
            )
    with limiters(db_url, 1, 10) as (limiter,):
        assert admit(limiter, "client") == 200
    with engine.connect() as conn:
        rows = conn.execute(select(RateLimitCounter.client_id, RateLimitCounter.window)).all()
    assert sorted(tuple(row) for row in rows) == [("client", window), ("last", window - 1)]
    engine.dispose()


def test_in_memory_the_limiter_always_decides_without_a_claim() -> None:
    limiter = make_rate_limiter(create_engine("sqlite://"), 3)
    assert [limiter.hit_local("client") for _ in range(3)] == [True] * 3
    with pytest.raises(TooManyRequests) as refused:
        limiter.hit_local("client")
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    assert limiter.hit_local("another")
