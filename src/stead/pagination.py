"""Page-based pagination (contract section 1): ``page`` 0-based, ``size`` 1-100 (default 25).

The envelope is ``{"page", "size", "total", "results"}``; order is creation time, then id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

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


def paginate(
    session: Session,
    query: Select[Any],
    params: PageParams,
    *,
    total: int | None = None,
    order: Sequence[InstrumentedAttribute[Any]] = (),
) -> tuple[int, list[Any]]:
    """Run ``query`` (already ordered) for one page.

    Args:
        total: the number of matching rows when the caller knows it (a maintained count);
            otherwise it is counted.
        order: the columns ``query`` is ordered by, ascending. With them, a page in the back half
            is read from the end in reverse order, so the last pages cost what the first ones do
            (an ``OFFSET`` walks every row it skips; the walk is then at most half the rows).

    Returns:
        ``(total, rows)``: the count of all matching rows and the scalars of this page.
    """
    if total is None:
        total = (
            session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
        )
    offset = params.page * params.size
    if offset >= total:
        return total, []
    end = min(offset + params.size, total)
    if order and offset > total - end:
        reverse = query.order_by(None).order_by(*(column.desc() for column in order))
        rows = list(session.scalars(reverse.limit(end - offset).offset(total - end)))
        rows.reverse()
        return total, rows
    return total, list(session.scalars(query.limit(params.size).offset(offset)))
