"""What a database holds, for tests that prove a failed request wrote nothing and that no
secret is stored in clear."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.db import Base

#: Request bookkeeping, not provisioned state: the rate limiter counts every request, and a
#: console session is touched as it is used.
NOT_STATE = {"rate_limit_counters", "console_sessions"}


def row_counts(factory: sessionmaker[Session]) -> dict[str, int]:
    """The number of rows of every table but :data:`NOT_STATE`."""
    with factory() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
            if table.name not in NOT_STATE
        }


def all_text(factory: sessionmaker[Session]) -> str:
    """Every value of every row of every table, as text."""
    with factory() as session:
        return "\n".join(
            repr(tuple(row))
            for table in Base.metadata.sorted_tables
            for row in session.execute(select(table))
        )
