"""The ``page`` and ``size`` query parameters of every list route (docs/api.md): ``page``
0-based, ``size`` 1-100 (default 25); out of range is a 400 naming the parameter."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from stead.pagination import MAX_SIZE, PageParams


async def _page_params(
    page: Annotated[int, Query(ge=0, le=10_000_000, description="0-based page number")] = 0,
    size: Annotated[int, Query(ge=1, le=MAX_SIZE, description="items per page, 1-100")] = 25,
) -> PageParams:
    return PageParams(page=page, size=size)


#: A route parameter of this type gets the requested :class:`~stead.pagination.PageParams`.
PageDep = Annotated[PageParams, Depends(_page_params)]
