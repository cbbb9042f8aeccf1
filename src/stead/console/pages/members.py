"""``/console/projects/{projectId}/members``: the project's members and pending invitations;
Owners invite (email + role), change roles (the last Owner stays), remove members and revoke
invitations. The same members service and permissions as ``/v1/projects/{id}/members``; a
project the user may not see is a 404, as there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Form, Query, Request, Response

from stead.console import web
from stead.console.web import Console, ConsoleUser
from stead.db import utcnow
from stead.errors import AppError
from stead.identity import members
from stead.identity.deps import ProjectContext, parse_uuid
from stead.identity.models import ProjectMember
from stead.identity.permissions import PROJECT_ROLES, account_allows, project_allows
from stead.identity.schemas import InvitationCreate, MemberUpdate
from stead.pagination import PageParams
from stead.pipeline.transaction import SessionDep, make_router

router = make_router(prefix="/projects/{projectId}/members")

PAGE_SIZE = 100
ROLE_OPTIONS = [(role, role) for role in PROJECT_ROLES]
MemberReader = Annotated[ProjectContext, web.project_access("member.read")]
MemberManager = Annotated[ProjectContext, web.project_access("member.manage")]


def _base(ctx: ProjectContext) -> str:
    return f"{web.PREFIX}/projects/{ctx.project.id}/members"


def _page(
    request: Request,
    db: SessionDep,
    ctx: ProjectContext,
    *,
    page: int = 0,
    errors: web.FormErrors | None = None,
    form: dict[str, str] | None = None,
    accept_url: str | None = None,
    status: int = 200,
) -> Response:
    total, rows = members.list_members(
        db, project=ctx.project, params=PageParams(page=page, size=PAGE_SIZE)
    )
    manage = project_allows(ctx.role, "member.manage")
    pending: list[Any] = []
    if manage:
        now = utcnow()
        _, invitations = members.list_invitations(
            db, project=ctx.project, params=PageParams(page=0, size=PAGE_SIZE)
        )
        pending = [i for i in invitations if i.accepted_at is None and i.expires_at > now]
    base = _base(ctx)
    return web.render(
        request,
        "people/members.html",
        {
            "project": ctx.project,
            "rows": rows,
            "total": total,
            "pending": pending,
            "manage": manage,
            "roles": ROLE_OPTIONS,
            "form": form or {"email": "", "project_role": "VIEWER"},
            "accept_url": accept_url,
            "base": base,
            "next_url": f"{base}?page={page + 1}" if (page + 1) * PAGE_SIZE < total else None,
            "prev_url": f"{base}?page={page - 1}" if page > 0 else None,
            "errors": errors,
        },
        status=status,
    )


@router.get("")
def list_members(
    request: Request,
    ctx: MemberReader,
    db: SessionDep,
    page: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> Response:
    """Members with their roles (anyone who may read them), and for Owners the pending
    invitations and the buttons."""
    return _page(request, db, ctx, page=page)


def _manage(
    request: Request,
    db: SessionDep,
    console: Console,
    ctx: ProjectContext,
    field: str,
    work: Callable[[], str],
) -> Response:
    """Run ``work`` on the project (its Owner checked by :data:`MemberManager`); flash what it
    returns and go back to the page (303), or show the page with the service's error at
    ``field`` (4xx), having changed nothing."""
    try:
        done = work()
    except AppError as exc:
        db.rollback()
        aliases = {"projectRole": field, "memberId": field, "invitationId": field}
        return _page(
            request, db, ctx, errors=web.form_errors(exc, aliases=aliases), status=exc.status
        )
    web.flash(db, console, done)
    return web.redirect(_base(ctx))


def _member(db: SessionDep, ctx: ProjectContext, member_id: str) -> tuple[ProjectMember, str]:
    """The project's member ``member_id`` and its display name ("" when unknown).

    Raises:
        BadRequest: ``member_id`` is not a UUID. NotFound: no such member of the project.
    """
    member = members.get_member(
        db, project=ctx.project, member_id=parse_uuid(member_id, field="memberId")
    )
    return member, members.names_of(db, ids=[member.principal_id]).get(member.principal_id, "")


@router.post("/{member_id}/role")
def change_role(
    request: Request,
    console: ConsoleUser,
    ctx: MemberManager,
    db: SessionDep,
    member_id: str,
    project_role: Annotated[str, Form()] = "",
) -> Response:
    """Give a member another project role (the last Owner keeps theirs: 409 at the field)."""

    def work() -> str:
        data = web.validated(MemberUpdate, {"projectRole": project_role})
        member, name = _member(db, ctx, member_id)
        members.change_role(
            db, actor=console.actor, project=ctx.project, member=member, role=data.project_role
        )
        return f"{name} is now {data.project_role}."

    return _manage(request, db, console, ctx, f"role-{member_id}", work)


@router.post("/{member_id}/remove")
def remove(
    request: Request,
    console: ConsoleUser,
    ctx: MemberManager,
    db: SessionDep,
    member_id: str,
) -> Response:
    """Remove a member from the project (not the last Owner)."""

    def work() -> str:
        member, name = _member(db, ctx, member_id)
        members.remove_member(db, actor=console.actor, project=ctx.project, member=member)
        return f"{name} has been removed from the project."

    return _manage(request, db, console, ctx, f"role-{member_id}", work)


@router.post("/invitations/{invitation_id}/revoke")
def revoke(
    request: Request,
    console: ConsoleUser,
    ctx: MemberManager,
    db: SessionDep,
    invitation_id: str,
) -> Response:
    """Withdraw a pending invitation: its link stops working."""

    def work() -> str:
        members.revoke_invitation(
            db,
            actor=console.actor,
            project=ctx.project,
            invitation_id=parse_uuid(invitation_id, field="invitationId"),
        )
        return "The invitation has been revoked."

    return _manage(request, db, console, ctx, f"invitation-{invitation_id}", work)


@router.post("/invite")
def invite(
    request: Request,
    console: ConsoleUser,
    ctx: MemberManager,
    db: SessionDep,
    email: Annotated[str, Form()] = "",
    project_role: Annotated[str, Form()] = "",
) -> Response:
    """Invite ``email`` with ``project_role``: the link is mailed when a mail server is set;
    without one an account Admin gets it on the page, this once."""
    settings = request.app.state.settings
    reveal = not settings.smtp_host and account_allows(console.actor.role, "invitation.reveal")
    form = {"email": email, "project_role": project_role}
    try:
        data = web.validated(
            InvitationCreate,
            {"email": email, "projectRole": project_role, "returnAcceptUrl": reveal},
        )
        _, accept_url = members.invite(
            db, actor=console.actor, project=ctx.project, data=data, settings=settings
        )
    except AppError as exc:
        db.rollback()
        aliases = {"projectRole": "project_role", "returnAcceptUrl": "email"}
        errors = web.form_errors(exc, aliases=aliases)
        return _page(request, db, ctx, errors=errors, form=form, status=exc.status)
    if accept_url is not None:
        return _page(request, db, ctx, accept_url=accept_url, form={"email": email})
    web.flash(db, console, f"{email} has been invited as {data.project_role}; the link was mailed.")
    return web.redirect(_base(ctx))
