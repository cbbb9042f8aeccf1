"""Page-based pagination (docs/api.md): ``page`` 0-based, ``size`` 1-100 (default 25).

The envelope is ``{"page", "size", "total", "results"}``; order is creation time, then id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
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


async def _page_params(
    page: Annotated[int, Query(ge=0, le=10_000_000, description="0-based page number")] = 0,
    size: Annotated[int, Query(ge=1, le=MAX_SIZE, description="items per page, 1-100")] = 25,
) -> PageParams:
    return PageParams(page=page, size=size)


PageDep = Annotated[PageParams, Depends(_page_params)]


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
