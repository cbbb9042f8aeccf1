"""The request's database session and transaction (docs/request-lifecycle.md).

- :func:`get_session` (:data:`SessionDep`): one session and one transaction per request, ended
  before the response is sent; :func:`get_write_session` (:data:`WriteSessionDep`) the same as
  a write whatever the method.
- :class:`TransactionRoute`, through :func:`make_router`: a sync endpoint commits in its own
  worker thread.
- :func:`write_with_response`: a write that needs the built response (the ``Idempotency-Key``
  record) joins the request's transaction, right before its commit.
- :func:`run_read`: a short read from an async dependency, on the event loop where that is
  cheaper than a thread hop.
- :func:`stepped_out`: commit, leave admission control, wait for something slow (a warehouse, a
  git provider), then queue again and start a new write transaction.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from stead.db import READS_IN_PLACE, begin_write, finish
from stead.pipeline.admission import SCOPE_KEY, Admission

_T = TypeVar("_T")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: ``Request.scope`` key of the pending :func:`write_with_response` (session, write).
_RESPONSE_WRITE = "stead.response_write"
#: ``Session.info`` flag: the commit waits for the response (:func:`write_with_response`).
_COMMIT_WITH_RESPONSE = "stead.commit_with_response"


async def run_read(session: Session, func: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
    """``func(*args, **kwargs)``, a short read through ``session``, from an async dependency.

    A read-only session on SQLite runs it right on the event loop: the read is a call into the
    SQLite library in this process, and in WAL mode a reader waits for no lock, so a worker-thread
    hop would cost more than the read. Any other session runs it in a worker thread: a write
    session's first statement may wait for SQLite's write lock, and a PostgreSQL read is a
    network round trip, neither of which may stall the event loop.

    Raises:
        whatever ``func`` raises.
    """
    if session.info.get(READS_IN_PLACE):
        return func(*args, **kwargs)
    return await run_in_threadpool(func, *args, **kwargs)


async def _end(session: Session, *, commit: bool, on_loop: bool) -> None:
    """:func:`stead.db.finish` on the event loop, or in a worker thread shielded from
    cancellation so a connection is never left mid-transaction."""
    if on_loop:
        finish(session, commit=commit)
        return
    with anyio.CancelScope(shield=True):
        await run_in_threadpool(finish, session, commit=commit)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """FastAPI dependency: one session and one transaction per request.

    The session is made on the event loop (it connects lazily, in the worker thread of its first
    query); the commit, or the rollback after an error, runs in a worker thread, shielded from
    cancellation so a connection is never left mid-transaction; a read (autocommit, so there is
    nothing to send) ends on the loop, and so does a write a sync endpoint already committed in
    its own thread (:class:`TransactionRoute`).
    Write requests (any method but GET/HEAD/OPTIONS) take SQLite's write lock at their first
    statement.

    Registered with ``scope="function"`` so the commit happens before the response is sent: a
    failed commit is reported as an error, never as success.
    """
    async with _request_transaction(request, reading=request.method in _SAFE_METHODS) as session:
        yield session


async def get_write_session(request: Request) -> AsyncIterator[Session]:
    """FastAPI dependency: like :func:`get_session`, but a write transaction whatever the method,
    for a read that must leave a trace in the same transaction (reading an agent's client secret
    writes an audit event)."""
    async with _request_transaction(request, reading=False) as session:
        yield session


@asynccontextmanager
async def _request_transaction(request: Request, *, reading: bool) -> AsyncIterator[Session]:
    state = request.app.state
    factory = state.read_sessionmaker if reading else state.write_sessionmaker
    session: Session = factory()
    # A read runs in autocommit on both databases: ending it sends nothing (psycopg skips
    # COMMIT/ROLLBACK on an idle connection; SQLite's WAL reads take no lock): no hop. Nor does
    # a transaction already committed in the endpoint's thread (TransactionRoute).
    try:
        yield session
    except BaseException:
        await _end(session, commit=False, on_loop=reading or not session.in_transaction())
        raise
    await _end(session, commit=True, on_loop=reading or not session.in_transaction())


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
WriteSessionDep = Annotated[Session, Depends(get_write_session, scope="function")]


def write_with_response(
    request: Request, session: Session, write: Callable[[Session, Response], None]
) -> None:
    """Have ``write(session, response)`` run in the request's own transaction once the route has
    built its response (status, headers, body), right before the commit, so what it writes
    commits or rolls back with the request's change: one transaction, no extra round trip for a
    ``BEGIN``/``COMMIT`` of its own. Only on a route of :class:`TransactionRoute`; it does not run
    when the endpoint raises (the transaction is rolled back). One per request: a second call
    replaces the first.
    """
    request.scope[_RESPONSE_WRITE] = (session, write)
    session.info[_COMMIT_WITH_RESPONSE] = True


def _write_and_commit(
    session: Session, write: Callable[[Session, Response], None], response: Response
) -> None:
    session.info.pop(_COMMIT_WITH_RESPONSE, None)
    write(session, response)
    session.commit()


class TransactionRoute(APIRoute):
    """The route class of Stead's API routers (:func:`make_router`): a sync endpoint commits the
    request's session (a :data:`SessionDep` among its parameters) in its own worker thread,
    after it returns.

    The transaction then ends in the thread that ran its statements, and :func:`get_session`
    finds nothing left to commit: one thread hop per write request instead of two (a hop costs
    more Python time than a small transaction's commit). An endpoint that raises commits
    nothing: :func:`get_session` rolls back, as before. Async endpoints are left as they are.

    A request with a :func:`write_with_response` commits once its response is built instead: the
    write and the commit run in one worker thread (shielded from cancellation), before
    :func:`get_session` ends the session; a failed commit is an error answer, as always.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _committing(endpoint)
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            response = await handler(request)
            pending = request.scope.pop(_RESPONSE_WRITE, None)
            if pending is not None:
                session, write = pending
                with anyio.CancelScope(shield=True):
                    await run_in_threadpool(_write_and_commit, session, write, response)
            return response

        return handle


def _committing(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)  # FastAPI reads the parameters through ``__wrapped__``
    def run(**kwargs: Any) -> Any:
        result = endpoint(**kwargs)
        for value in kwargs.values():
            if (
                isinstance(value, Session)
                and value.in_transaction()
                and not value.info.get(_COMMIT_WITH_RESPONSE)
            ):
                value.commit()
        return result

    return run


def make_router(route_class: type[TransactionRoute] = TransactionRoute, **kwargs: Any) -> APIRouter:
    """An ``APIRouter`` of the API (``prefix``, ``tags`` ... as ``APIRouter`` takes them) whose
    routes are :class:`TransactionRoute`\\ s, or of a subclass of it (``route_class``)."""
    return APIRouter(route_class=route_class, **kwargs)


async def stepped_out(request: Request, session: Session, work: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``work()`` outside the request's transaction and admission slot.

    Commits what ``session`` holds (the request has written nothing it would want undone), leaves
    admission control (its slot and, on SQLite, the writer's turn), awaits ``work()``, then
    queues again and starts a new write transaction on ``session`` (SQLite: ``BEGIN
    IMMEDIATE``), also when ``work`` raises: neither a database connection, the write lock nor a
    slot is held while something slow (a warehouse, a git provider) answers. A sync endpoint
    calls it through ``anyio.from_thread.run``.

    Raises:
        whatever ``work`` or the commit raises.
    """
    await run_in_threadpool(session.commit)
    admission = request.scope.get(SCOPE_KEY)
    try:
        if isinstance(admission, Admission) and admission.held:
            async with admission.stepped_out():
                return await work()
        return await work()
    finally:
        await run_in_threadpool(begin_write, session)
