"""Admission control: requests that use the database wait on the event loop, not in threads.

Sync endpoints and dependencies run in a pool of 40 worker threads, and each request holds a
database connection across several of those thread hops. A request that cannot get a connection
blocks its thread; with enough such requests every thread is blocked waiting for a connection,
while the requests holding the connections wait for a free thread to finish: nothing moves until
the pool's checkout timeout (30 s). The same happens with SQLite's single writer: threads waiting
for the write lock starve the request holding it until the busy timeout answers 503. Fifty
simultaneous creates, or 64 concurrent reads, were enough.

So at most :data:`MAX_ACTIVE` database-backed requests run at once, and on SQLite at most one of
them writes; the others queue on an ``asyncio`` semaphore / lock, which costs no thread. The
limit is below the thread pool (40) and below the connection pool (15 on SQLite, 30 on
PostgreSQL) divided by the connections one request may hold at once (two on PostgreSQL: the
request's own and the rate limiter's). On 2 cores, 10 requests in flight keep the CPU busy.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

#: Database-backed requests running at once, per server process.
MAX_ACTIVE = 10
_GATED = ("/v1/", "/dpc/v1/", "/oauth/")
_API = ("/v1/", "/dpc/v1/")
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AdmissionGate:
    """ASGI middleware: at most :data:`MAX_ACTIVE` API and token requests at once; with
    ``one_writer`` (SQLite), API requests that change data also run one at a time."""

    def __init__(self, app: ASGIApp, *, one_writer: bool) -> None:
        self.app = app
        self._active = asyncio.Semaphore(MAX_ACTIVE)
        self._writer = asyncio.Lock() if one_writer else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(_GATED):
            await self.app(scope, receive, send)
            return
        if (
            self._writer is not None
            and scope["method"] in _WRITE_METHODS
            and scope["path"].startswith(_API)
        ):
            # The writer lock first: a writer waiting for a slot holds no slot.
            async with self._writer, self._active:
                await self.app(scope, receive, send)
            return
        async with self._active:
            await self.app(scope, receive, send)


def install(app: FastAPI, engine: Engine) -> None:
    """Add :class:`AdmissionGate` to ``app`` (one writer at a time when ``engine`` is SQLite)."""
    app.add_middleware(AdmissionGate, one_writer=engine.dialect.name == "sqlite")
