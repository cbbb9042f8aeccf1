"""Every console page module's router, under ``/console``: one line per module (each module
exposes ``router``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from stead.console import web
from stead.console.pages import (
    account,
    agents,
    api_clients,
    audit,
    auth,
    cli,
    links,
    members,
    plan,
    project,
    projects,
    scim_tokens,
    sso,
    users,
    wizard,
)

console_router = APIRouter(prefix=web.PREFIX)
# In this order: a page's fixed paths (``/projects/new``) come before another's parameters.
for page in (
    auth,
    sso,
    account,
    cli,
    wizard,
    projects,
    members,
    project,
    audit,
    api_clients,
    links,
    users,
    scim_tokens,
    plan,
    agents,
):
    console_router.include_router(page.router)


@console_router.get("")
def console_home() -> RedirectResponse:
    """``/console``: 303 to the projects page (which sends a browser without a session to log
    in)."""
    return web.redirect(f"{web.PREFIX}/projects")


#: ``GET /``: the console is the server's front page.
root_router = APIRouter()


@root_router.get("/")
def front_page() -> RedirectResponse:
    """303 to ``/console``."""
    return web.redirect(web.PREFIX)
