"""The session store: expiry (8 h idle, 7 days at most), touch at most once a minute, and
ending a user's sessions."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from stead.console import sessions
from stead.console.sessions import ConsoleSession
from stead.db import session_scope, utcnow
from stead.identity.models import User
from tests.support.factories import new_user


def _start(factory: sessionmaker[Session], user_id: str) -> str:
    with session_scope(factory, write=True) as db:
        user = db.get_one(User, user_id)
        return sessions.start_session(
            db, user=user, user_agent="ua", address="10.0.0.1"
        ).cookie_value


def _shift(factory: sessionmaker[Session], cookie: str, **values: object) -> None:
    with session_scope(factory, write=True) as db:
        db.execute(
            update(ConsoleSession)
            .where(ConsoleSession.id_hash == sessions.hash_id(cookie))
            .values(**values)
        )


def _load(factory: sessionmaker[Session], cookie: str) -> ConsoleSession | None:
    with session_scope(factory, write=True) as db:
        found = sessions.load_session(db, cookie_value=cookie)
        return found[0] if found else None


def test_idle_and_absolute_expiry(session_factory: sessionmaker[Session]) -> None:
    user_id, _ = new_user(session_factory)
    idle, old, fresh = (_start(session_factory, user_id) for _ in range(3))
    now = utcnow()
    _shift(session_factory, idle, last_seen_at=now - timedelta(hours=8, seconds=1))
    _shift(session_factory, old, expires_at=now - timedelta(seconds=1))
    assert _load(session_factory, idle) is None
    assert _load(session_factory, old) is None
    assert _load(session_factory, fresh) is not None
    with session_factory() as db:
        left = list(db.scalars(select(ConsoleSession.id_hash)))
    assert left == [sessions.hash_id(fresh)]  # ended sessions are deleted


def test_last_seen_moves_at_most_once_a_minute(session_factory: sessionmaker[Session]) -> None:
    user_id, _ = new_user(session_factory)
    cookie = _start(session_factory, user_id)
    recent = utcnow() - timedelta(seconds=30)
    _shift(session_factory, cookie, last_seen_at=recent)
    loaded = _load(session_factory, cookie)
    assert loaded is not None and loaded.last_seen_at == recent
    _shift(session_factory, cookie, last_seen_at=recent - timedelta(minutes=1))
    loaded = _load(session_factory, cookie)
    assert loaded is not None and loaded.last_seen_at > recent


def test_a_disabled_users_sessions_are_not_loaded(session_factory: sessionmaker[Session]) -> None:
    user_id, _ = new_user(session_factory)
    cookie = _start(session_factory, user_id)
    with session_scope(session_factory, write=True) as db:
        db.get_one(User, user_id).disabled_at = utcnow()
    assert _load(session_factory, cookie) is None


def test_end_user_sessions_keeps_the_one_asked(session_factory: sessionmaker[Session]) -> None:
    user_id, _ = new_user(session_factory)
    other_id, _ = new_user(session_factory)
    mine = [_start(session_factory, user_id) for _ in range(3)]
    theirs = _start(session_factory, other_id)
    with session_scope(session_factory, write=True) as db:
        ended = sessions.end_user_sessions(db, user_id=user_id, keep=sessions.hash_id(mine[0]))
        listed = sessions.list_user_sessions(db, user_id=user_id)
    assert ended == 2
    assert [s.id_hash for s in listed] == [sessions.hash_id(mine[0])]
    assert _load(session_factory, theirs) is not None
    with session_scope(session_factory, write=True) as db:
        sessions.end_session(db, id_hash=sessions.hash_id(theirs), user_id=user_id)  # not theirs
    assert _load(session_factory, theirs) is not None
