"""``/console/account``: the user's own password, console sessions and command lines (CLI
grants)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request, Response

from stead.console import sessions, web
from stead.console.web import Console, ConsoleUser
from stead.errors import AppError
from stead.identity import grants, users
from stead.identity.deps import parse_uuid
from stead.identity.routes import forget_after_commit
from stead.identity.schemas import PasswordChange
from stead.identity.service import NO_PASSWORD
from stead.pipeline.transaction import SessionDep, make_router

router = make_router(prefix="/account")

#: Service field names -> the form's.
_FIELDS = {"currentPassword": "current_password", "newPassword": "new_password"}


def _page(
    request: Request,
    db: SessionDep,
    console: Console,
    *,
    errors: web.FormErrors | None = None,
    status: int = 200,
) -> Response:
    user = users.me(db, actor=console.actor)
    return web.render(
        request,
        "account/account.html",
        {
            "user": user,
            "has_password": user.password_hash != NO_PASSWORD,
            "sessions": sessions.list_user_sessions(db, user_id=user.id),
            "grants": grants.list_grants(db, user_id=user.id),
            "errors": errors,
        },
        status=status,
    )


@router.get("")
def account(request: Request, console: ConsoleUser, db: SessionDep) -> Response:
    """The user's email and role, the password form, their live sessions and CLI grants."""
    return _page(request, db, console)


@router.post("/password")
def change_password(
    request: Request,
    console: ConsoleUser,
    db: SessionDep,
    current_password: Annotated[str, Form()] = "",
    new_password: Annotated[str, Form()] = "",
    confirm_password: Annotated[str, Form()] = "",
) -> Response:
    """Change the password: the user's other sessions end, this one stays. 400 with the
    form's errors when the current password is wrong or the new one is refused."""
    try:
        web.check_confirmation(new_password, confirm_password, noun="new password")
        data = web.validated(
            PasswordChange, {"currentPassword": current_password, "newPassword": new_password}
        )
        users.change_password(
            db,
            actor=console.actor,
            user=users.me(db, actor=console.actor),
            current=data.current_password.get_secret_value(),
            new=data.new_password.get_secret_value(),
            keep_session=console.session_key,
        )
    except AppError as exc:
        db.rollback()
        aliases = {**_FIELDS, "confirmPassword": "confirm_password"}
        return _page(
            request, db, console, errors=web.form_errors(exc, aliases=aliases), status=exc.status
        )
    web.flash(db, console, "Your password has been changed; your other sessions have ended.")
    return web.redirect(f"{web.PREFIX}/account")


@router.post("/sessions/end")
def end_session(
    console: ConsoleUser, db: SessionDep, session_id: Annotated[str, Form()] = ""
) -> Response:
    """End one of the user's other sessions (``session_id``: its table key, as listed)."""
    sessions.end_session(db, id_hash=session_id, user_id=console.actor.id)
    web.flash(db, console, "The session has ended.")
    return web.redirect(f"{web.PREFIX}/account")


@router.post("/sessions/end-others")
def end_other_sessions(console: ConsoleUser, db: SessionDep) -> Response:
    """End every session of the user but this one."""
    ended = sessions.end_user_sessions(db, user_id=console.actor.id, keep=console.session_key)
    web.flash(db, console, f"{ended} other session{'s' if ended != 1 else ''} ended.")
    return web.redirect(f"{web.PREFIX}/account")


@router.post("/grants/revoke")
def revoke_grant(
    request: Request,
    console: ConsoleUser,
    db: SessionDep,
    grant_id: Annotated[str, Form()] = "",
) -> Response:
    """Revoke one of the user's CLI grants (``grant_id``, as listed): its refresh token and
    access tokens stop working at once. 404 page for a grant that is not the user's."""
    grant = grants.get_own_grant(
        db, actor=console.actor, grant_id=parse_uuid(grant_id, field="grant_id")
    )
    grants.revoke(db, grant=grant, actor=console.actor, reason="console")
    forget_after_commit(db, request, console.actor.id)
    web.flash(db, console, f"{grant.name} is logged out.")
    return web.redirect(f"{web.PREFIX}/account")
