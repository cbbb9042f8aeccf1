"""Page-based pagination (docs/api.md): ``page`` 0-based, ``size`` 1-100 (default 25).

The envelope is ``{"page", "size", "total", "results"}``; order is creation time, then id. The
query parameters that ask for a page are read by :data:`stead.pipeline.paging.PageDep`: this
module is the services' side, and loads no web framework (the ``stead admin`` commands use it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")

MAX_SIZE = 100


@dataclass(frozen=True)
class PageParams:
    """The requested page: ``page`` (0-based) and ``size`` (items per page)."""

    page: int = 0
    size: int = 25


class Page(BaseModel, Generic[T]):
    """One page of a list: ``total`` counts all items, ``results`` holds at most ``size``."""

    page: int
    size: int
    total: int
    results: list[T]


def paginate(session: Session, query: Select[Any], params: PageParams) -> tuple[int, list[Any]]:
    """Run ``query`` (already ordered) for one page: a ``COUNT`` of its rows and a
    ``LIMIT``/``OFFSET`` read (the offset walks every row it skips: for lists bounded by one
    project or one principal).

    Returns:
        ``(total, rows)``: the count of all matching rows and the scalars of this page.
    """
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    offset = params.page * params.size
    if offset >= total:
        return total, []
    return total, list(session.scalars(query.limit(params.size).offset(offset)))
