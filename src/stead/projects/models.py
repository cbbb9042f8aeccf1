"""Tables: projects (docs/api.md, Projects) and the per-account counts that page their list."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stead.db import Base, UUIDStr, new_uuid

#: How many consecutive ``Project.seq`` values one ``ProjectListBucket`` covers.
BUCKET_SIZE = 1024


class Project(Base):
    """A data project: name (unique per account, case-insensitive), warehouse, deployment type.

    ``seq`` numbers the account's projects in creation order (1, 2, ...; never reused): the
    project service takes it from ``Account.project_seq`` under the account row's lock, so it is
    unique per account and project lists are ordered by it.
    """

    __tablename__ = "projects"
    __table_args__ = (
        Index("uq_projects_account_name_key", "account_id", "name_key", unique=True),
        Index("uq_projects_account_seq", "account_id", "seq", unique=True),
        # Name prefixes are ranges in byte order (``stead.projects.service.browse``): on
        # PostgreSQL the unique index above is in the database's collation order, this one in
        # byte order (``COLLATE "C"``). SQLite compares bytes in both.
        Index(
            "ix_projects_account_name_c",
            "account_id",
            "name_key",
            postgresql_ops={"name_key": 'COLLATE "C"'},
        ),
    )

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_uuid)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    seq: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    name_key: Mapped[str] = mapped_column(String(1024))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    warehouse: Mapped[str] = mapped_column(String(20))
    agent_deployment_type: Mapped[str] = mapped_column(String(20))


class ProjectListBucket(Base):
    """How many projects of an account still exist with ``seq // BUCKET_SIZE == bucket``.

    A bucket's row is made with its first project and kept (count 0 when all its projects are
    gone). Running sums over the buckets find the page of a project list without an ``OFFSET``
    over the whole list (the list's order-statistic index, one level above ``seq``).
    """

    __tablename__ = "project_list_buckets"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(Integer)
