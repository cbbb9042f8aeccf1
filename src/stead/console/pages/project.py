"""``/console/projects/{projectId}`` and ``/console/projects/{projectId}/environments/{name}``:
a project's tabs (overview, environments, secrets, repository, members, audit), its rename and
delete, and an environment's settings, per-user access, connection test and dbt profile
(docs/console.md).

Every page and action declares the permission its ``/v1`` route declares, through the same
dependency factories (:func:`stead.identity.deps.project_permission`,
:func:`~stead.identity.deps.environment_permission`) with the console's session as the actor:
a project the user may not see is 404 on every URL, a permission the role lacks is 403, and a
page shows only the forms its reader may use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import Depends, Form, Path, Query, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from stead.agents import service as agents_service
from stead.agents.models import Agent
from stead.audit import service as audit_service
from stead.audit.service import AuditFilter, Cursor
from stead.connections import service as connections_service
from stead.console import web, wording
from stead.console.web import ConsoleUser
from stead.environments import service as environment_service
from stead.environments.credentials import PROPERTIES
from stead.environments.routes import environment_read
from stead.environments.schemas import EnvironmentUpdate
from stead.errors import AppError, BadRequest
from stead.identity import members
from stead.identity.deps import (
    EnvironmentContext,
    ProjectContext,
    parse_uuid,
    project_refusal,
)
from stead.identity.permissions import (
    account_allows,
    environment_allows,
    project_allows,
)
from stead.identity.schemas import EnvironmentAccessSet
from stead.pagination import PageParams
from stead.pipeline.transaction import SessionDep, make_router
from stead.projects import service as project_service
from stead.projects.schemas import ProjectUpdate
from stead.repositories import service as repository_service
from stead.secrets import service as secrets_service
from stead.secrets.schemas import HOSTED_STORE
from stead.warehouses import StoredValue, WarehouseSpec, connection_test, spec_for
from stead.warehouses.dbt import MEDIA_TYPE, profiles_yml
from stead.warehouses.schemas import ConnectionTestResult

router = make_router(prefix="/projects/{projectId}")

#: Items a tab lists at most (a project's environments, secrets, members); more are counted.
LIST_SIZE = 100
#: Audit events per page of the audit tab.
AUDIT_PAGE = 50

ProjectReader = Annotated[ProjectContext, web.project_access("project.read")]
ProjectUpdater = Annotated[ProjectContext, web.project_access("project.update")]
ProjectDeleter = Annotated[ProjectContext, web.project_access("project.delete")]
MemberManager = Annotated[ProjectContext, web.project_access("member.manage")]
EnvironmentReader = Annotated[EnvironmentContext, web.environment_access("environment.read")]
EnvironmentRunner = Annotated[EnvironmentContext, web.environment_access("environment.run")]
EnvironmentAdmin = Annotated[EnvironmentContext, web.environment_access("environment.write")]

Tab = Literal["overview", "environments", "secrets", "repository", "members", "audit"]
#: Each tab, its label, and the permission its ``/v1`` read declares (docs/permissions.md).
TABS: tuple[tuple[str, str, str], ...] = (
    ("overview", "Overview", "project.read"),
    ("environments", "Environments", "project.read"),
    ("secrets", "Secrets", "project.read"),
    ("repository", "Repository", "project.read"),
    ("members", "Members", "member.read"),
    ("audit", "Audit", "audit.read"),
)


def project_url(project_id: str, tab: str = "overview", **query: str | int | None) -> str:
    """The console URL of a project's ``tab`` (the overview without ``?tab=``)."""
    params = {"tab": None if tab == "overview" else tab, **query}
    text = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{web.PREFIX}/projects/{project_id}" + (f"?{text}" if text else "")


def environment_url(project_id: str, name: str) -> str:
    """The console URL of an environment's page (its name percent-encoded)."""
    return f"{web.PREFIX}/projects/{project_id}/environments/{quote(name, safe='')}"


def _tab_allowed(ctx: ProjectContext, permission: str) -> bool:
    """The ``/v1`` rule of each tab's read: the project role decides; the project's audit trail
    is also open to account roles that read every event (``GET /v1/audit-events``)."""
    if permission == "audit.read" and account_allows(ctx.actor.role, permission):
        return True
    return project_allows(ctx.role, permission)


# --- the project page ------------------------------------------------------------------------


def _tab_context(db: Session, ctx: ProjectContext, tab: str, older: str | None) -> dict[str, Any]:
    project = ctx.project
    everything = PageParams(page=0, size=LIST_SIZE)
    if tab == "overview":
        _, connections = connections_service.list_page(db, project=project, params=everything)
        total, _ = environment_service.list_page(db, project=project, params=PageParams(0, 1))
        return {"connections": connections, "environment_count": total}
    if tab == "environments":
        total, environments = environment_service.list_page(db, project=project, params=everything)
        return {"environments": environments, "total": total}
    if tab == "secrets":
        hosted_total, hosted = secrets_service.list_hosted(db, project=project, params=everything)
        ref_total, references = secrets_service.list_references(
            db, project=project, params=everything
        )
        return {
            "hosted": hosted,
            "hosted_total": hosted_total,
            "references": references,
            "references_total": ref_total,
        }
    if tab == "repository":
        return {"repository": repository_service.find(db, project=project)}
    if tab == "members":
        total, rows = members.list_members(db, project=project, params=everything)
        return {"members": rows, "total": total}
    page = audit_service.page_events(
        db,
        actor=ctx.actor,
        where=AuditFilter(project_ids=None, project_id=project.id),
        limit=AUDIT_PAGE,
        older_than=Cursor.parse(older, field="older") if older else None,
    )
    return {
        "events": page.events,
        "next_url": (
            project_url(project.id, "audit", older=page.older.token()) if page.older else None
        ),
        "first_url": project_url(project.id, "audit") if older is not None else None,
    }


def _project_page(
    request: Request,
    db: Session,
    ctx: ProjectContext,
    *,
    tab: str = "overview",
    older: str | None = None,
    errors: web.FormErrors | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    permission = dict((name, perm) for name, _, perm in TABS)[tab]
    if not _tab_allowed(ctx, permission):
        raise project_refusal(ctx, permission)
    return web.render(
        request,
        "project/page.html",
        {
            "project": ctx.project,
            "role": ctx.role,
            "tab": tab,
            "tabs": [
                (name, label, project_url(ctx.project.id, name))
                for name, label, perm in TABS
                if _tab_allowed(ctx, perm)
            ],
            "may_update": project_allows(ctx.role, "project.update"),
            "may_delete": project_allows(ctx.role, "project.delete"),
            "may_manage_members": project_allows(ctx.role, "member.manage"),
            "environment_url": environment_url,
            "errors": errors,
            "form": form or {},
            **_tab_context(db, ctx, tab, older),
        },
        status=status,
    )


@router.get("")
def project_page(
    request: Request,
    ctx: ProjectReader,
    db: SessionDep,
    tab: Annotated[Tab, Query(description="the tab shown")] = "overview",
    older: Annotated[str | None, Query(description="audit tab: the page after this cursor")] = None,
) -> Response:
    """A project's page at one tab (``project.read``; the members tab ``member.read``, the
    audit tab ``audit.read``, as ``/v1``'s reads of them)."""
    return _project_page(request, db, ctx, tab=tab, older=older)


@router.post("/rename")
def rename_project(
    request: Request,
    ctx: ProjectUpdater,
    console: ConsoleUser,
    db: SessionDep,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
) -> Response:
    """Rename or re-describe the project (``project.update``, as ``PATCH /v1/projects/{id}``);
    400 with the form's errors when the name is invalid or taken."""
    fields = {"name": name, "description": description or None}
    try:
        data = web.validated(ProjectUpdate, fields)
        project_service.update(db, actor=ctx.actor, project=ctx.project, data=data)
    except AppError as exc:
        db.rollback()
        errors = web.form_errors(exc, known={"name", "description"})
        return _project_page(
            request,
            db,
            ctx,
            errors=errors,
            form={"name": name, "description": description},
            status=exc.status,
        )
    web.flash(db, console, f"Project renamed to {ctx.project.name}.")
    return web.redirect(project_url(ctx.project.id))


@router.post("/delete")
def delete_project(
    request: Request,
    ctx: ProjectDeleter,
    console: ConsoleUser,
    db: SessionDep,
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Delete the project with everything in it (``project.delete``, as ``DELETE
    /v1/projects/{id}``), once the user typed its exact name; 400 and nothing deleted
    otherwise."""
    name = ctx.project.name
    if confirm != name:
        errors = web.FormErrors()
        errors.add("confirm", f"Type the project's name, {name}, exactly to delete it.")
        return _project_page(request, db, ctx, errors=errors, status=400)
    project_service.delete(db, actor=ctx.actor, project=ctx.project)
    web.flash(db, console, f"Project {name} was deleted.")
    return web.redirect(f"{web.PREFIX}/projects")


# --- the environment page --------------------------------------------------------------------


@dataclass(frozen=True)
class PropertyRow:
    """One connection property as the environment page shows it.

    Attributes:
        key: the property (docs/warehouses.md).
        label: its label, and hint: the hint under its input (:mod:`stead.console.wording`).
        required: whether the warehouse requires it.
        value: its plain value, when it is stored as one and is not a credential.
        points_at: for a property held in a secret, what it points at in words (a hosted
            secret, or a secret reference and where it lives); never a value.
        fingerprint: a private key's public-key fingerprint, when Stead stored it.
        secret: True when the form offers a "Replace" input (blank keeps the stored secret)
            rather than a plain input.
    """

    key: str
    label: str
    hint: str | None
    required: bool
    value: str
    points_at: str | None
    fingerprint: str | None
    secret: bool


def _points_at(db: Session, project_id: str, entry: StoredValue) -> str:
    """What a ``{"secretName", "secretKey"?}`` entry names, in words (names only)."""
    name = entry["secretName"]
    key = f", key {entry['secretKey']}" if entry.get("secretKey") else ""
    if entry.get("set"):
        return f"hosted secret {name} (stored by Stead)"
    reference = secrets_service.find_reference(db, project_id=project_id, name=name)
    if reference is None:
        return f"hosted secret {name}{key}"
    if reference.agent_type == HOSTED_STORE:
        return f"secret reference {name} to hosted secret {reference.secret_name}{key}"
    return f"secret reference {name} to {reference.agent_type} secret {reference.secret_name}{key}"


def _in_secret(spec: WarehouseSpec, key: str, entry: StoredValue | None) -> bool:
    """True when property ``key`` is held in a secret (every sensitive property, and any
    other stored as ``secretName``): the form shows what it points at and a "Replace" input."""
    return key in spec.sensitive or (entry is not None and "secretName" in entry)


def _property_rows(
    db: Session, project_id: str, warehouse: str, stored: dict[str, StoredValue]
) -> list[PropertyRow]:
    spec = spec_for(warehouse)
    rows = []
    for key in spec.keys:
        entry = stored.get(key)
        referenced = entry is not None and "secretName" in entry
        rows.append(
            PropertyRow(
                key=key,
                label=wording.property_label(key),
                hint=wording.property_hint(spec, key),
                required=key in spec.required,
                value=entry["value"] if entry is not None and not referenced else "",
                points_at=_points_at(db, project_id, entry) if entry and referenced else None,
                fingerprint=entry.get("fingerprint") if entry and referenced else None,
                secret=_in_secret(spec, key, entry),
            )
        )
    return rows


def _usable_agents(db: Session, ctx: EnvironmentContext) -> list[Agent]:
    """The account's agents this project's environments may use (the rule of ``POST
    /v1/projects/{id}/environments``, :func:`stead.agents.service.check_usable`), and the
    environment's own agent in any case."""
    _, agents = agents_service.list_agents(db, actor=ctx.actor, params=PageParams(0, LIST_SIZE))
    usable = []
    for agent in agents:
        try:
            agents_service.check_usable(
                db, account_id=ctx.project.account_id, agent_id=agent.id, project=ctx.project
            )
        except BadRequest:
            if agent.id != ctx.environment.default_agent_id:
                continue
        usable.append(agent)
    return usable


def _environment_page(
    request: Request,
    db: Session,
    ctx: EnvironmentContext,
    *,
    errors: web.FormErrors | None = None,
    form: dict[str, str] | None = None,
    access_errors: web.FormErrors | None = None,
    test: ConnectionTestResult | None = None,
    problem: str | None = None,
    status: int = 200,
) -> Response:
    environment = ctx.environment
    project = ctx.project
    may_read_members = project_allows(ctx.role, "member.read")
    access: list[Any] = []
    users: list[tuple[str, str]] = []
    if may_read_members:
        _, access = members.list_access(
            db, project=project, name=environment.name, params=PageParams(0, LIST_SIZE)
        )
    may_manage_access = project_allows(ctx.role, "member.manage")
    if may_manage_access:
        _, rows = members.list_members(db, project=project, params=PageParams(0, LIST_SIZE))
        users = [(m.principal_id, name) for m, name in rows if m.principal_type == "user"]
    may_write = environment_allows(ctx.level, "environment.write")
    return web.render(
        request,
        "project/environment.html",
        {
            "project": project,
            "environment": environment_read(environment),
            "properties": _property_rows(
                db, project.id, project.warehouse, environment.connection_properties
            ),
            "agents": [
                (a.id, f"{a.name} (hosted)" if a.is_hosted else a.name)
                for a in (_usable_agents(db, ctx) if may_write else [])
            ],
            "access_levels": wording.ACCESS_LEVELS,
            "access": access,
            "users": users,
            "level": ctx.level,
            "may_write": may_write,
            "may_run": environment_allows(ctx.level, "environment.run"),
            "may_read_members": may_read_members,
            "may_manage_access": may_manage_access,
            "project_url": project_url(project.id, "environments"),
            "self_url": environment_url(project.id, environment.name),
            "errors": errors or access_errors,
            "edit_errors": errors,
            "access_errors": access_errors,
            "form": form or {},
            "test": test,
            "problem": problem,
        },
        status=status,
        block="test_result" if test is not None or problem is not None else None,
    )


@router.get("/environments/{environmentName}")
def environment_page(request: Request, ctx: EnvironmentReader, db: SessionDep) -> Response:
    """An environment's settings (``environment.read``, as ``GET /v1/.../environments/{name}``)
    with the forms the user may use."""
    return _environment_page(request, db, ctx)


async def _form_fields(request: Request) -> dict[str, str]:
    """The request's form as ``name -> text`` (files and repeated names left out)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


FormFields = Annotated[dict[str, str], Depends(_form_fields)]

#: Names of the edit form's fields: plain properties and the "Replace" inputs of secrets.
PLAIN = "property-"
REPLACE = "replace-"


def _update_body(ctx: EnvironmentContext, form: dict[str, str]) -> dict[str, Any]:
    """The ``PATCH /v1/.../environments/{name}`` body the edit form stands for: the fields it
    changes (a field the form leaves out, or sends unchanged, is left out). A blank "Replace"
    input keeps the stored secret (the property is left out, as a PATCH that omits it keeps
    it); a cleared optional property returns to its default (``null``)."""
    environment = ctx.environment
    spec = spec_for(ctx.project.warehouse)
    stored = environment.connection_properties
    changes: dict[str, Any] = {}
    for key in spec.keys:
        entry = stored.get(key)
        if _in_secret(spec, key, entry):
            replacement = form.get(REPLACE + key, "")
            if replacement:
                changes[key] = {"value": replacement}
            continue
        text = form.get(PLAIN + key, "")
        current = entry["value"] if entry is not None else ""
        if text == current:
            continue
        changes[key] = None if not text and key not in spec.required else {"value": text}
    fields = {
        "defaultAgentId": (form.get("defaultAgentId"), environment.default_agent_id),
        "defaultUserAccessLevel": (
            form.get("defaultUserAccessLevel"),
            environment.default_user_access_level,
        ),
        "displayName": (form.get("displayName"), environment.display_name),
        "description": (form.get("description"), environment.description or ""),
    }
    # only what changed, so the audit event names only that; a blank display name or
    # description resets it (to the name) or clears it
    body: dict[str, Any] = {
        key: (sent or None)
        for key, (sent, current) in fields.items()
        if sent is not None and sent != current
    }
    if changes:
        body["connectionOverrides"] = [
            {"connectionName": environment.connection.name, "connectionProperties": changes}
        ]
    return body


def _edit_aliases(spec: WarehouseSpec, stored: dict[str, StoredValue]) -> dict[str, str]:
    """Service violation paths (``<properties>.<key>[.value|.secretName|.secretKey]``) -> the
    edit form's field of that property: its "Replace" input or its plain input."""
    aliases = {}
    for key in spec.keys:
        name = (REPLACE if _in_secret(spec, key, stored.get(key)) else PLAIN) + key
        for suffix in ("", ".value", ".secretName", ".secretKey"):
            aliases[f"{PROPERTIES}.{key}{suffix}"] = name
    return aliases


@router.post("/environments/{environmentName}")
def update_environment(
    request: Request,
    ctx: EnvironmentAdmin,
    console: ConsoleUser,
    db: SessionDep,
    form: FormFields,
) -> Response:
    """Save the environment's edit form (``environment.write``, as ``PATCH
    /v1/.../environments/{name}``): 303 back to the page, or 400 (403 for a secret that is not
    the user's to use) with the form's errors and nothing stored."""
    environment = ctx.environment
    spec = spec_for(ctx.project.warehouse)
    try:
        data = web.validated(EnvironmentUpdate, _update_body(ctx, form))
        environment_service.update(
            db, actor=ctx.actor, project=ctx.project, name=environment.name, data=data
        )
    except AppError as exc:
        db.rollback()
        aliases = _edit_aliases(spec, environment.connection_properties)
        errors = web.form_errors(exc, aliases=aliases)
        kept = {k: v for k, v in form.items() if not k.startswith(REPLACE) and k != "csrf_token"}
        return _environment_page(request, db, ctx, errors=errors, form=kept, status=exc.status)
    web.flash(db, console, f"Environment {environment.name} saved.")
    return web.redirect(environment_url(ctx.project.id, environment.name))


@router.post("/environments/{environmentName}/connection-test")
async def test_connection(request: Request, ctx: EnvironmentRunner, db: SessionDep) -> Response:
    """Test the environment's stored settings (``environment.run``, as ``POST
    /v1/.../connection-test``). htmx gets the result region alone; without JavaScript the whole
    page comes back with the result in it. A test the warehouse refused is a 200 with its
    reason. A test that could not run (a secret not found or not the user's to use, a secret
    store or the warehouse's driver missing, too many tests running) shows the problem's detail
    in the same region, with the problem's status (htmx, which swaps no 5xx answer, gets 200);
    a refusal is audited as ``/v1`` audits it (``access.denied``)."""
    status = 200
    problem = None
    try:
        result: ConnectionTestResult | None = await connection_test.run_for_environment(
            request, db, actor=ctx.actor, project=ctx.project, environment=ctx.environment
        )
    except AppError as exc:
        await run_in_threadpool(db.rollback)
        await audit_service.record_refused(request, exc)
        if request.headers.get("hx-request") != "true":
            status = exc.status
        result, problem = None, exc.detail
    return await run_in_threadpool(
        _environment_page, request, db, ctx, test=result, problem=problem, status=status
    )


@router.get("/environments/{environmentName}/profile")
def download_profile(ctx: EnvironmentReader) -> Response:
    """The environment as a dbt ``profiles.yml``, as an attachment (``environment.read``, the
    same text as ``GET /v1/.../profile?format=dbt``)."""
    text = profiles_yml(
        project=ctx.project.name,
        environment=ctx.environment.name,
        warehouse=ctx.project.warehouse,
        properties=ctx.environment.connection_properties,
    )
    return Response(
        text,
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="profiles.yml"'},
    )


@router.post("/environments/{environmentName}/access")
def set_access(
    request: Request,
    ctx: MemberManager,
    env: EnvironmentReader,
    console: ConsoleUser,
    db: SessionDep,
    user_id: Annotated[str, Form(alias="userId")] = "",
    access_level: Annotated[str, Form(alias="accessLevel")] = "",
) -> Response:
    """Set a member's own access level to the environment (``member.manage``, as ``PUT
    /v1/.../environments/{name}/access/{userId}``)."""
    try:
        data = web.validated(EnvironmentAccessSet, {"accessLevel": access_level})
        members.set_access(
            db,
            actor=ctx.actor,
            project=ctx.project,
            name=env.environment.name,
            user_id=parse_uuid(user_id, field="userId"),
            level=data.access_level,
        )
    except AppError as exc:
        db.rollback()
        errors = web.form_errors(exc, known={"userId", "accessLevel"})
        return _environment_page(
            request,
            db,
            env,
            access_errors=errors,
            form={"userId": user_id, "accessLevel": access_level},
            status=exc.status,
        )
    web.flash(db, console, f"Access to {env.environment.name} set.")
    return web.redirect(environment_url(ctx.project.id, env.environment.name))


@router.post("/environments/{environmentName}/access/{userId}/remove")
def remove_access(
    ctx: MemberManager,
    env: EnvironmentReader,
    console: ConsoleUser,
    db: SessionDep,
    user_id: Annotated[str, Path(alias="userId")],
) -> Response:
    """Remove a user's own access level: the environment's default applies to them again
    (``member.manage``, as ``DELETE /v1/.../environments/{name}/access/{userId}``)."""
    members.remove_access(
        db,
        actor=ctx.actor,
        project=ctx.project,
        name=env.environment.name,
        user_id=parse_uuid(user_id, field="userId"),
    )
    web.flash(db, console, f"Access to {env.environment.name} removed.")
    return web.redirect(environment_url(ctx.project.id, env.environment.name))
