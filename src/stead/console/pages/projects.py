"""``/console/projects``: the projects the user may see, searched by name prefix and
keyset-paged (the query string holds ``q``, ``after``, ``before`` and ``last``)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import Query, Request, Response

from stead.console import web
from stead.console.web import ConsoleUser
from stead.pipeline.transaction import SessionDep, make_router
from stead.projects import service

router = make_router(prefix="/projects")

PAGE_SIZE = 50


def _url(**params: str | None) -> str:
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{web.PREFIX}/projects" + (f"?{query}" if query else "")


@router.get("")
def list_projects(
    request: Request,
    console: ConsoleUser,
    db: SessionDep,
    q: Annotated[str | None, Query(max_length=255)] = None,
    after: Annotated[str | None, Query(max_length=1024)] = None,
    before: Annotated[str | None, Query(max_length=1024)] = None,
    last: Annotated[str | None, Query(max_length=1)] = None,
) -> Response:
    """The list, its search box and its paging links; an htmx request (search as you type)
    gets the ``results`` block only."""
    q = (q or "").strip() or None
    page = service.browse(
        db,
        actor=console.actor,
        q=q,
        after=after,
        before=None if after else before,
        last=bool(last) and not after and not before,
        size=PAGE_SIZE,
    )
    first = after is None and before is None and not last
    return web.render(
        request,
        "projects/list.html",
        {
            "page": page,
            "q": q or "",
            "next_url": _url(q=q, after=page.next_after) if page.next_after else None,
            "prev_url": _url(q=q, before=page.prev_before) if page.prev_before else None,
            "first_url": None if first else _url(q=q),
            "last_url": _url(q=q, last="1") if page.next_after else None,
        },
        block="results",
    )
