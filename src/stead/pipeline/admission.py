"""Admission control: requests that use the database wait on the event loop, not in threads.

Sync endpoints and dependencies run in a pool of 40 worker threads, and each request holds a
database connection across several of those thread hops. A request that cannot get a connection
blocks its thread; with enough such requests every thread is blocked waiting for a connection,
while the requests holding the connections wait for a free thread to finish: nothing moves until
the pool's checkout timeout (30 s). The same happens with SQLite's single writer: threads waiting
for the write lock starve the request holding it until the busy timeout answers 503. Fifty
simultaneous creates, or 64 concurrent reads, were enough.

So at most :data:`MAX_ACTIVE` authenticated API requests run at once, and on SQLite at most one of
them writes; the others queue on an ``asyncio`` semaphore / lock, which costs no thread. The
limit is below the thread pool (40) and below the connection pools (15 on SQLite; 30 on
PostgreSQL, where the rate limiter has a pool of 15 of its own), one connection per request at a
time.

Four are enough to keep a server process busy: its Python runs on one core at a time (the GIL),
and a request waits for the database only for local round trips; work that waits on something
slow (a warehouse, a git remote) steps out. More runnable worker threads only contend for the
GIL and the event loop queues behind them. Measured with 16 and 64 clients on 2 cores, 4 against
10 (3 + 2 alternating rounds): system CPU per request was lower with 4 in most rounds, and
throughput moved within this machine's noise. Pure SQLite create loads moved as much between
rounds, and the limit cannot change them (SQLite writes run one at a time). No round showed 4
slower beyond that noise.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

#: Database-backed requests running at once, per server process.
MAX_ACTIVE = 4
_API = ("/v1/", "/dpc/v1/", "/console/", "/scim/")
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Where the gate puts a request's :class:`Admission` in the ASGI scope.
SCOPE_KEY = "stead.admission"


class Admission:
    """What one admitted request holds: a slot and, for a SQLite write, the writer lock.

    A request that waits on something slow outside the database (a warehouse's connection test)
    steps out with :meth:`stepped_out`, so others run meanwhile; it must not hold a database
    transaction while it is out.
    """

    def __init__(self, active: asyncio.Semaphore, writer: asyncio.Lock | None) -> None:
        self._active = active
        self._writer = writer
        self._held = False

    async def enter(self) -> None:
        """Wait for the writer lock (when needed), then for a slot."""
        # The writer lock first: a writer waiting for a slot holds no slot.
        if self._writer is not None:
            await self._writer.acquire()
        try:
            await self._active.acquire()
        except BaseException:
            if self._writer is not None:
                self._writer.release()
            raise
        self._held = True

    @property
    def held(self) -> bool:
        """True while the request holds its slot (and writer's turn)."""
        return self._held

    def leave(self) -> None:
        """Give back what :meth:`enter` took (nothing when it holds nothing)."""
        if not self._held:
            return
        self._held = False
        self._active.release()
        if self._writer is not None:
            self._writer.release()

    @asynccontextmanager
    async def stepped_out(self) -> AsyncIterator[None]:
        """Hold nothing inside the block; queue again at its end."""
        self.leave()
        try:
            yield
        finally:
            await self.enter()


class AdmissionGate:
    """ASGI middleware: gives each API (and console) request its :class:`Admission` (in
    ``scope["stead.admission"]``) and gives back whatever it took when the request ends.

    The request enters only once it is authenticated
    (:func:`stead.identity.deps.current_actor`): its body has been read whole by then
    (:mod:`stead.pipeline.body`), so nothing anonymous or slow to send waits in a slot or holds
    the writer's turn. At most :data:`MAX_ACTIVE` authenticated requests run at once; with
    ``one_writer`` (SQLite) those that change data also run one at a time. Sign-ins (the token
    endpoint, ``/v1/auth/login``) are not admitted: their password checks have a limit of their
    own (:mod:`stead.pipeline.throttle`)."""

    def __init__(self, app: ASGIApp, *, one_writer: bool) -> None:
        self.app = app
        self._active = asyncio.Semaphore(MAX_ACTIVE)
        self._writer = asyncio.Lock() if one_writer else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(_API):
            await self.app(scope, receive, send)
            return
        writes = scope["method"] in _WRITE_METHODS
        admission = Admission(self._active, self._writer if writes else None)
        scope[SCOPE_KEY] = admission
        try:
            await self.app(scope, receive, send)
        finally:
            admission.leave()


async def admit(scope: Scope) -> None:
    """Enter the request's admission control (once it is authenticated); nothing for a request
    outside the API, or one already admitted."""
    admission = scope.get(SCOPE_KEY)
    if admission is not None and not admission.held:
        await admission.enter()


def install(app: FastAPI, engine: Engine) -> None:
    """Add :class:`AdmissionGate` to ``app`` (one writer at a time when ``engine`` is SQLite)."""
    app.add_middleware(AdmissionGate, one_writer=engine.dialect.name == "sqlite")
