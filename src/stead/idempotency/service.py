"""``Idempotency-Key`` on every POST under ``/v1`` and ``/dpc/v1`` (docs/api.md).

How a keyed POST runs:

1. :func:`claim` (a router dependency, run before the route's own dependencies) inserts the
   key into ``idempotency_keys`` inside the request's own transaction, and has the response
   recorded on it in that same transaction once the route has built it, right before the
   commit (:func:`stead.pipeline.transaction.write_with_response`): the change, its key and its
   response commit together or not at all. A request that fails rolls its key back with
   everything else, so retrying it simply runs it again.
2. A request that commits before its change (a repository request steps out of its transaction
   while a provider answers) commits the key early, "in progress"; if it then fails,
   :class:`ReleaseFailedClaims` (a middleware) releases the key. An error response (4xx, 5xx)
   is never stored.
3. A later POST with the same key from the same principal within 24 hours gets the first
   response again (header ``Idempotent-Replayed: true``); with a different method, path, query
   or body it gets 409.
4. Two concurrent POSTs with one key: the unique index on (principal, key) decides. The second
   one waits for the first to commit (PostgreSQL blocks on the index entry, SQLite on its write
   lock), and then finds the first response already recorded and replays it, so both callers
   see the same object. Only a key committed early can be found "in progress": the second one
   then waits up to :data:`WAIT_SECONDS` for the first response to be recorded; if it never
   appears (the first server died meanwhile), the answer is 409: read the resource back.

A response that carries a one-time secret (an agent's or API client's ``clientSecret``, anything
sent with ``Cache-Control: no-store``) is never stored: its key is released instead, so a retry
runs again and returns a fresh secret; the earlier one was already replaced.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import Table, delete, event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stead.db import new_uuid, session_scope, utcnow
from stead.errors import BadRequest, Conflict
from stead.idempotency.models import IdempotencyKey
from stead.identity.deps import current_actor
from stead.pipeline.transaction import SessionDep, write_with_response

log = logging.getLogger("stead.idempotency")

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
#: How long a key is remembered (docs/api.md).
TTL = timedelta(hours=24)
#: How long a concurrent request with the same key waits for the first one's response.
WAIT_SECONDS = 10.0
_POLL_SECONDS = 0.05
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
#: Response headers kept with the response; the rest (request id, length, date) is per answer.
_KEPT_HEADERS = ("content-type", "location")
_SECRET_FIELD = re.compile(r"(secret|token|password|passphrase|private_?key)$", re.IGNORECASE)
_TABLE = cast(Table, IdempotencyKey.__table__)


@dataclass(frozen=True)
class Fingerprint:
    """A keyed POST: the key and the HMAC of everything that makes the request what it is."""

    key: str
    digest: str
    method: str
    path: str


@dataclass
class Claim:
    """A key this request inserted: its row's id, and whether a commit has taken it to the
    database (set by a session ``after_commit`` listener, :func:`install`)."""

    id: str
    committed: bool = False


#: ``Session.info`` key of the request's :class:`Claim`.
_CLAIM = "stead.idempotency_claim"


class Replay(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by :func:`claim` to answer with the stored first response."""

    def __init__(self, response: Response) -> None:
        super().__init__("replay")
        self.response = response


def parse_key(raw: str) -> str:
    """The key of an ``Idempotency-Key`` header: 1-255 visible ASCII characters, optionally in
    double quotes (the structured-field string form of the IETF idempotency-key draft).

    Raises:
        BadRequest: empty, too long, or holding spaces or non-ASCII characters.
    """
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not _KEY.fullmatch(value):
        raise BadRequest(
            f"{HEADER} must be 1-255 visible ASCII characters",
            violations=[f"{HEADER}: must be 1-255 visible ASCII characters"],
        )
    return value


def _canonical_body(body: bytes) -> bytes:
    """The body as canonical JSON (sorted keys, no spaces), so key order and spacing do not make
    two equal requests differ; other bodies as sent."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def request_digest(signing_key: bytes, *, method: str, path: str, query: str, body: bytes) -> str:
    """HMAC-SHA256 (hex) of a request. ``/dpc/v1/...`` and ``/v1/...`` are the same request."""
    path = path.removeprefix("/dpc")
    message = b"\n".join([method.encode(), path.encode(), query.encode(), _canonical_body(body)])
    return hmac.new(signing_key, message, hashlib.sha256).hexdigest()


async def fingerprint(request: Request) -> Fingerprint | None:
    """The fingerprint of a POST that carries an ``Idempotency-Key``, else None.

    Raises:
        BadRequest: the header is malformed (see :func:`parse_key`).
    """
    raw = request.headers.get(HEADER)
    if raw is None or request.method != "POST":
        return None
    key = parse_key(raw)
    body = await request.body()  # already read (and cached) by FastAPI for the route
    digest = request_digest(
        request.app.state.signing_key,
        method=request.method,
        path=request.url.path,
        query=request.url.query,
        body=body,
    )
    return Fingerprint(key=key, digest=digest, method=request.method, path=request.url.path)


async def _principal(request: Request) -> str | None:
    """The id of the bearer token's principal; None without a bearer token (the route will
    answer 401). Raises Unauthorized for an invalid token, as the route would."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return (await current_actor(request)).id


def _find(session: Session, *, principal: str, key: str) -> IdempotencyKey | None:
    return session.scalars(
        select(IdempotencyKey).where(
            IdempotencyKey.principal_id == principal, IdempotencyKey.key == key
        )
    ).first()


def _replay_or_conflict(row: IdempotencyKey | None, fp: Fingerprint) -> Replay | Conflict:
    if row is None:
        return Conflict(
            f"The request first sent with this {HEADER} ended without keeping its response "
            "(it failed, or its answer held a one-time secret); send it again"
        )
    if row.request_hash != fp.digest:
        return Conflict(
            f"This {HEADER} was already used for a different request",
            violations=[f"{HEADER}: already used for a different request"],
        )
    if row.status is None:
        return Conflict(
            f"The request first sent with this {HEADER} is still running, or stopped before "
            "its response was recorded; read the resource back instead of retrying"
        )
    headers = dict(row.response_headers or {})
    headers[REPLAYED_HEADER] = "true"
    body = (row.response_body or "").encode()
    return Replay(Response(content=body, status_code=row.status, headers=headers))


def _wait_for_response(
    factory: sessionmaker[Session], *, principal: str, key: str
) -> IdempotencyKey | None:
    """Poll, in fresh read transactions, until the key's response is recorded (or
    :data:`WAIT_SECONDS` pass); return the row as last seen."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        with factory() as session:
            row = _find(session, principal=principal, key=key)
        if row is None or row.status is not None or time.monotonic() >= deadline:
            return row
        time.sleep(_POLL_SECONDS)


async def claim(request: Request, session: SessionDep) -> None:
    """Router dependency: claim the request's ``Idempotency-Key`` in its own transaction, or
    answer from the key's first use (module docstring). A request without the header costs one
    header lookup: fingerprint and principal are worked out only for a keyed POST.

    Raises:
        BadRequest: the header is malformed (see :func:`parse_key`).
        Replay: the key was used for this same request: its first response is the answer.
        Conflict: the key was used for a different request, or its first response is not
            available (see :func:`_replay_or_conflict`).
    """
    fp = await fingerprint(request)
    if fp is None:
        return
    principal = await _principal(request)
    if principal is None:
        return
    await run_in_threadpool(_claim, request, session, fp, principal)


def _insert(session: Session, *, principal: str, fp: Fingerprint) -> str | None:
    """Insert the key unless (principal, key) is taken: the new row's id, or None.

    One ``INSERT ... ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite alike): no lookup before
    it and no savepoint around it. A concurrent uncommitted insert of the same key makes it
    wait for that transaction (PostgreSQL's unique index, SQLite's write lock), as the
    unique index decides the race.
    """
    claim_id = new_uuid()
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    now = utcnow()
    inserted = session.execute(
        dialect.insert(_TABLE)
        .values(
            id=claim_id,
            principal_id=principal,
            key=fp.key,
            method=fp.method,
            path=fp.path,
            request_hash=fp.digest,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["principal_id", "key"])
        .returning(_TABLE.c.id)
    )
    return inserted.scalar_one_or_none()


def _claim(request: Request, session: Session, fp: Fingerprint, principal: str) -> None:
    claim_id = _insert(session, principal=principal, fp=fp)
    if claim_id is None:
        row = _find(session, principal=principal, key=fp.key)
        if row is not None and row.created_at <= utcnow() - TTL:
            session.execute(delete(_TABLE).where(_TABLE.c.id == row.id))
            claim_id = _insert(session, principal=principal, fp=fp)
        elif row is not None and (row.status is not None or row.request_hash != fp.digest):
            raise _replay_or_conflict(row, fp)
    if claim_id is not None:
        pending = Claim(claim_id)
        session.info[_CLAIM] = request.state.idempotency_claim = pending
        write_with_response(request, session, _record)
        return
    # The first request is committed but its response is not recorded yet. Release this
    # request's transaction (on SQLite, the write lock the recording needs) while waiting.
    session.rollback()
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    raise _replay_or_conflict(_wait_for_response(factory, principal=principal, key=fp.key), fp)


def _holds_one_time_secret(headers: dict[str, str], body: bytes) -> bool:
    """True for a response that must not be stored: ``Cache-Control: no-store``, or JSON with a
    secret-named field (``clientSecret``, ``token``, ``password``, ...) at any depth."""
    if "no-store" in headers.get("cache-control", "").lower():
        return True
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        return False

    def walk(value: Any) -> bool:
        if isinstance(value, dict):
            return any(_SECRET_FIELD.search(str(k)) or walk(v) for k, v in value.items())
        if isinstance(value, list):
            return any(walk(v) for v in value)
        return False

    return walk(parsed)


def _record(session: Session, response: Response) -> None:
    """Store a success's response on the request's key, in the request's transaction, or
    release the key of one that holds a one-time secret; now and then (:class:`Sweep`) forget
    keys older than :data:`TTL`. An error response is left to :class:`ReleaseFailedClaims`."""
    pending: Claim = session.info[_CLAIM]
    status = response.status_code
    if status >= 400:
        return
    body = getattr(response, "body", None)  # a streamed response has none: not kept
    headers = {k.lower(): v for k, v in response.headers.items()}
    mine = _TABLE.c.id == pending.id
    if not isinstance(body, bytes) or _holds_one_time_secret(headers, body):
        session.execute(delete(_TABLE).where(mine))
    else:
        session.execute(
            update(_TABLE)
            .where(mine)
            .values(
                status=status,
                response_body=body.decode("utf-8", errors="replace"),
                response_headers={k: headers[k] for k in _KEPT_HEADERS if k in headers},
                updated_at=utcnow(),
            )
        )
    if _SWEEP.due():
        session.execute(delete(_TABLE).where(_TABLE.c.created_at < utcnow() - TTL))


class Sweep:
    """When expired keys are next deleted: at most once per :data:`SWEEP_SECONDS` per server
    process, instead of a ``DELETE`` with every recorded response. An expired key is treated
    as unused whether or not it was deleted yet (:func:`_claim`), so the sweep only keeps the
    table small; it runs in a recording request's transaction, and a sweep that rolls back
    with its request is done again by a later one only after the interval."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._next = 0.0
        self._lock = threading.Lock()

    def due(self) -> bool:
        """True once per interval (for one caller), False otherwise."""
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                return False
            self._next = now + self._every
            return True


#: How often expired keys are deleted, at most (seconds).
SWEEP_SECONDS = 300.0
_SWEEP = Sweep(SWEEP_SECONDS)


def _release(factory: sessionmaker[Session], claim_id: str) -> None:
    with session_scope(factory, write=True) as session:
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == claim_id))


def _note_commit(session: Session) -> None:
    pending = session.info.get(_CLAIM)
    if pending is not None:
        pending.committed = True


class ReleaseFailedClaims:
    """ASGI middleware: release the key of a request that committed its claim early (see the
    module docstring) and then answered with an error, before that answer is sent, so a retry
    with the key runs the request again.

    Every other response streams through untouched. A failure to release is logged and does not
    change the answer.

    Args:
        app: the wrapped ASGI app.
        factory: the session factory the key is released with.
    """

    def __init__(self, app: ASGIApp, factory: sessionmaker[Session]) -> None:
        self.app = app
        self.factory = factory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return

        async def release_failed(message: Message) -> None:
            pending: Claim | None = scope.get("state", {}).get("idempotency_claim")
            if (
                message["type"] == "http.response.start"
                and pending is not None
                and pending.committed
                and message["status"] >= 400
            ):
                try:
                    await run_in_threadpool(_release, self.factory, pending.id)
                except SQLAlchemyError as exc:
                    log.warning("could not release an idempotency key: %s", type(exc).__name__)
            await send(message)

        await self.app(scope, receive, release_failed)


IDEMPOTENCY = [Depends(claim)]
"""Router dependencies for every API router (``app.include_router(..., dependencies=...)``)."""


def install(app: FastAPI) -> None:
    """Register the replay handler, the commit listener of the request sessions and the
    release middleware on ``app``."""

    async def replay(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Replay)
        return exc.response

    app.add_exception_handler(Replay, replay)
    event.listen(app.state.write_sessionmaker, "after_commit", _note_commit)
    app.add_middleware(ReleaseFailedClaims, factory=app.state.sessionmaker)
