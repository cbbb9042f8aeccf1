"""``/console/users`` (account admins): the account's users with role, status, last login and
lockout; change a role, disable or enable, unlock, make a password reset link (shown once),
sign out everywhere. Every action calls the users service as ``/v1/users`` does; its errors
come back at the row's field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Form, Query, Request, Response

from stead.console import web
from stead.console.web import Console
from stead.errors import AppError
from stead.identity import users
from stead.identity.deps import parse_uuid
from stead.identity.models import User
from stead.identity.permissions import ACCOUNT_ROLES
from stead.identity.routes import forget_after_commit
from stead.identity.schemas import UserUpdate
from stead.pagination import PageParams
from stead.pipeline.transaction import SessionDep, make_router

router = make_router(prefix="/users")

PAGE_SIZE = 50
Reader = Annotated[Console, Depends(web.require("user.read"))]
Manager = Annotated[Console, Depends(web.require("user.manage"))]


def _may_manage(console: Console, user: User) -> bool:
    """Whether the page offers ``console``'s user the buttons for ``user`` (the service
    decides again): never oneself, and a Super Admin only to a Super Admin."""
    if user.id == console.actor.id or not console.may("user.manage"):
        return False
    return user.role != "SUPER_ADMIN" or console.may("user.super_admin")


def _page(
    request: Request,
    db: SessionDep,
    console: Console,
    *,
    q: str | None = None,
    page: int = 0,
    errors: web.FormErrors | None = None,
    status: int = 200,
) -> Response:
    total, rows = users.list_users(
        db, actor=console.actor, params=PageParams(page=page, size=PAGE_SIZE), q=q
    )
    scim, sso = users.external_ids(db, users=rows)
    return web.render(
        request,
        "people/users.html",
        {
            "rows": rows,
            "scim": scim,
            "sso": sso,
            "total": total,
            "locked": users.locked_user_ids(db, users=rows),
            "manageable": {u.id for u in rows if _may_manage(console, u)},
            "roles": [
                (r, r)
                for r in ACCOUNT_ROLES
                if r != "SUPER_ADMIN" or console.may("user.super_admin")
            ],
            **web.page_links("/users", q=q, page=page, size=PAGE_SIZE, total=total),
            "errors": errors,
        },
        status=status,
        block="results",
    )


@router.get("")
def list_users(
    request: Request,
    console: Reader,
    db: SessionDep,
    q: Annotated[str | None, Query(max_length=320)] = None,
    page: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> Response:
    """The users, searched by email prefix (``q``), 50 a page; an htmx request gets the
    ``results`` block only."""
    return _page(request, db, console, q=(q or "").strip() or None, page=page)


def _run(
    request: Request,
    db: SessionDep,
    console: Console,
    user_id: str,
    field: str,
    work: Callable[[User], Any],
    done: str | None,
) -> Response:
    """Run ``work`` on user ``user_id``, flash ``done`` (``{email}`` filled in) and go back to
    the list (303); or show the list with the service's error at the row's ``field`` (4xx),
    having changed nothing. Without ``done``, None's answer is the caller's to make."""
    name = f"{field}-{user_id}"
    try:
        user = users.get_user(db, actor=console.actor, user_id=parse_uuid(user_id, field="userId"))
        work(user)
    except AppError as exc:
        db.rollback()
        errors = web.form_errors(exc, aliases={"userId": name, "role": name})
        return _page(request, db, console, errors=errors, status=exc.status)
    forget_after_commit(db, request, user.id)
    if done is not None:
        web.flash(db, console, done.format(email=user.email))
    return web.redirect(f"{web.PREFIX}/users")


@router.post("/{user_id}/role")
def change_role(
    request: Request,
    console: Manager,
    db: SessionDep,
    user_id: str,
    role: Annotated[str, Form()] = "",
) -> Response:
    """Give the user account role ``role``; they are signed out everywhere."""

    def work(user: User) -> None:
        data = web.validated(UserUpdate, {"role": role})
        users.update_user(db, actor=console.actor, user=user, disabled=None, role=data.role)

    done = f"{{email}} now has the role {role.upper()}; their sessions have ended."
    return _run(request, db, console, user_id, "role", work, done)


def _action(
    path: str, field: str, done: str, doc: str, call: Callable[[SessionDep, Console, User], Any]
) -> None:
    """Register ``POST /console/users/{user_id}/<path>``: :func:`_run` with ``call(db,
    console, user)``, its errors at the row's ``field`` and ``done`` flashed; ``doc`` is the
    endpoint's docstring."""

    def endpoint(request: Request, console: Manager, db: SessionDep, user_id: str) -> Response:
        return _run(request, db, console, user_id, field, lambda u: call(db, console, u), done)

    endpoint.__doc__ = doc
    name = path.replace("-", "_")
    router.add_api_route(f"/{{user_id}}/{path}", endpoint, methods=["POST"], name=name)


_action(
    "disable",
    "status",
    "{email} is disabled; their sessions have ended.",
    "Disable the user: they cannot log in, and their sessions and tokens end at once.",
    lambda db, c, u: users.update_user(db, actor=c.actor, user=u, disabled=True, role=None),
)
_action(
    "enable",
    "status",
    "{email} is enabled.",
    "Enable a disabled user: they may log in again.",
    lambda db, c, u: users.update_user(db, actor=c.actor, user=u, disabled=False, role=None),
)
_action(
    "unlock",
    "unlock",
    "{email} is unlocked.",
    "Clear the user's login lockouts from every address.",
    lambda db, c, u: users.unlock(db, actor=c.actor, user=u),
)
_action(
    "end-sessions",
    "sessions",
    "Every session of {email} has ended.",
    "Sign the user out everywhere (console sessions and API tokens).",
    lambda db, c, u: users.revoke_tokens(db, actor=c.actor, user=u),
)


@router.post("/{user_id}/reset-password")
def reset_password(request: Request, console: Manager, db: SessionDep, user_id: str) -> Response:
    """Make a password reset link for the user (they are signed out everywhere) and show it,
    this once, on a page that is not cached; it is also mailed when a mail server is set."""
    made: dict[str, Any] = {}

    def work(user: User) -> None:
        reset, url, mail_sent = users.start_password_reset(
            db, actor=console.actor, user=user, settings=request.app.state.settings
        )
        made.update(user=user, reset=reset, url=url, mail_sent=mail_sent)

    answer = _run(request, db, console, user_id, "reset", work, None)
    if not made:
        return answer
    return web.render(request, "people/reset_link.html", made)
