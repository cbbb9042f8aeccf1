"""One API write at a time on SQLite, queued on the event loop instead of in worker threads.

SQLite has a single writer: a write request takes the database lock at ``BEGIN IMMEDIATE`` (see
:mod:`stead.db`) and every other writer waits for it. Waiting inside a worker thread is what
starves the server: with more concurrent writes than threads in the pool, every thread can end
up waiting for the lock while the request holding it waits for a free thread to finish, until
SQLite's busy timeout answers 503. Queueing write requests on an ``asyncio.Lock`` before they
take a thread keeps the threads for work that can progress; the database is no less concurrent,
since it would run those writes one at a time anyway. PostgreSQL needs no such gate.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_API_PREFIXES = ("/v1/", "/dpc/v1/")


class SQLiteWriteGate:
    """ASGI middleware: ``/v1`` and ``/dpc/v1`` requests that change data run one at a time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in _WRITE_METHODS
            and scope["path"].startswith(_API_PREFIXES)
        ):
            async with self._lock:
                await self.app(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install(app: FastAPI, engine: Engine) -> None:
    """Add :class:`SQLiteWriteGate` to ``app`` when ``engine`` is SQLite."""
    if engine.dialect.name == "sqlite":
        app.add_middleware(SQLiteWriteGate)
