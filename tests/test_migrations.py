"""The migrations produce exactly the schema the models declare, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select

from stead.agents.models import Agent
from stead.db import make_sessionmaker
from stead.identity.models import Account
from stead.models import Base


def test_no_drift_between_models_and_migrations(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    assert diff == []


def test_account_and_hosted_agent_are_seeded(db_url: str) -> None:
    engine = create_engine(db_url)
    with make_sessionmaker(engine)() as session:
        accounts = list(session.scalars(select(Account)))
        hosted = list(session.scalars(select(Agent).where(Agent.is_hosted)))
    engine.dispose()
    assert len(accounts) == 1
    assert len(hosted) == 1 and hosted[0].account_id == accounts[0].id
