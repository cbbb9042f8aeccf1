"""Checks shared by the repository provider tests: counting associations and their audit
events, checking one of the distinct answers to a failed association, and searching responses,
log records and every database row for a canary token."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from sqlalchemy import MetaData, func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.audit.models import AuditEvent
from stead.repositories.models import Repository
from tests.support.factories import assert_problem

TOKEN = "Git-Provider-Access-Token"


def count(factory: sessionmaker[Session]) -> int:
    """How many repository associations exist."""
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Repository)) or 0


def audit_actions(factory: sessionmaker[Session]) -> list[str]:
    """The actions of the ``repository.*`` audit events, oldest first."""
    with factory() as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.action.like("repository.%"))
                .order_by(AuditEvent.id)
            )
        )


def check_answer(
    resp: Any, status: int, field: str | None, leak: str, retry_after: Iterable[int] = ()
) -> dict[str, Any]:
    """A problem answer with ``status``, a violation naming ``field`` (if given), without the
    provider's text ``leak`` and, for 503, a ``Retry-After`` in ``retry_after``."""
    body = assert_problem(resp, status, field)
    assert leak == "" or leak not in resp.text, (leak, resp.text)
    if status == 503:
        assert int(resp.headers["retry-after"]) in retry_after, resp.headers
    return body


def assert_never_leaked(
    secrets: Iterable[str],
    responses: Iterable[Any],
    logs: pytest.LogCaptureFixture,
    factory: sessionmaker[Session],
) -> None:
    """None of ``secrets`` is in any response (body or headers), log record or database row."""
    secrets = list(secrets)
    records = [repr(vars(record)) for record in logs.records]
    assert records
    with factory() as session:
        tables = MetaData()
        tables.reflect(bind=session.connection())
        rows = [repr(session.execute(select(table)).all()) for table in tables.sorted_tables]
    for secret in secrets:
        for resp in responses:
            assert secret not in resp.text, resp.request.url
            assert secret not in str(resp.headers.raw), resp.request.url
        assert all(secret not in record for record in records)
        assert secret not in logs.text
        assert all(secret not in row for row in rows)
