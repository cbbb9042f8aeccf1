"""``/console/agents``: the account's agents with their status and allow-lists
(``agent.read``); create one (its credentials are shown once), edit it, edit its allow-list,
refresh its secret, delete it by typing its name (``agent.write``). The same services and rules
as ``/v1/agents``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Form, Query, Request, Response

from stead.agents import service
from stead.agents.models import Agent
from stead.agents.schemas import (
    AGENT_TYPES,
    DEPLOYMENTS,
    AgentAllowList,
    AgentCreate,
    AgentRead,
    AgentUpdate,
)
from stead.console import web
from stead.console.web import Console
from stead.errors import AppError, BadRequest
from stead.identity.deps import parse_uuid
from stead.pagination import PageParams
from stead.pipeline.transaction import SessionDep, make_router
from stead.projects import service as projects_service
from stead.projects.models import Project

router = make_router(prefix="/agents")

PAGE_SIZE = 50
Reader = Annotated[Console, Depends(web.require("agent.read"))]
Writer = Annotated[Console, Depends(web.require("agent.write"))]

_PROVIDERS = sorted({provider for provider, _ in DEPLOYMENTS.values()})
_CREATE_FIELDS = ("name", "description", "agentType", "cloudProvider", "deployment")


def _options(values: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    return [(v, v) for v in values]


def _choices() -> dict[str, Any]:
    return {
        "agent_types": _options(AGENT_TYPES),
        "providers": _options(_PROVIDERS),
        "deployments": [(d, f"{d} ({p})") for d, (p, _) in DEPLOYMENTS.items()],
    }


def _list(
    request: Request,
    db: SessionDep,
    console: Console,
    *,
    q: str | None = None,
    page: int = 0,
    form: dict[str, Any] | None = None,
    errors: web.FormErrors | None = None,
    status: int = 200,
) -> Response:
    total, rows = service.list_agents(
        db, actor=console.actor, params=PageParams(page=page, size=PAGE_SIZE), q=q
    )
    allowed = {a.id: len(service.get_allow_list(db, agent=a).projects) for a in rows}
    return web.render(
        request,
        "agents/list.html",
        {
            "agents": [AgentRead.model_validate(a) for a in rows],
            "allowed": allowed,
            "total": total,
            **web.page_links("/agents", q=q, page=page, size=PAGE_SIZE, total=total),
            "form": form
            or {
                "name": "",
                "description": "",
                "agentType": "data_productivity_cloud",
                "cloudProvider": "aws",
                "deployment": "fargate",
                "restrictedAccess": False,
            },
            "errors": errors,
            **_choices(),
        },
        status=status,
        block="results",
    )


@router.get("")
def agents(
    request: Request,
    console: Reader,
    db: SessionDep,
    q: Annotated[str | None, Query(max_length=255)] = None,
    page: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> Response:
    """The account's agents, searched by name prefix (``q``), 50 a page, and (for
    ``agent.write``) the form that creates one; an htmx request gets the ``results`` block
    only."""
    return _list(request, db, console, q=(q or "").strip() or None, page=page)


def _credentials(
    request: Request, agent: Agent, client_id: str, secret: str, *, created: bool
) -> Response:
    """The one page that shows an agent's client secret: never cached."""
    return web.render(
        request,
        "agents/credentials.html",
        {
            "agent": AgentRead.model_validate(agent),
            "client_id": client_id,
            "secret": secret,
            "created": created,
        },
        status=201 if created else 200,
        headers={"Cache-Control": "no-store"},
    )


@router.post("")
def create_agent(
    request: Request,
    console: Writer,
    db: SessionDep,
    name: Annotated[str, Form(max_length=1024)] = "",
    description: Annotated[str, Form(max_length=4096)] = "",
    agent_type: Annotated[str, Form(alias="agentType", max_length=64)] = "",
    cloud_provider: Annotated[str, Form(alias="cloudProvider", max_length=64)] = "",
    deployment: Annotated[str, Form(max_length=64)] = "",
    restricted: Annotated[bool, Form(alias="restrictedAccess")] = False,
) -> Response:
    """Create an agent, then show its client credentials once (as ``GET
    .../credentials`` would, audited)."""
    form: dict[str, Any] = {
        "name": name,
        "description": description or None,
        "agentType": agent_type,
        "cloudProvider": cloud_provider,
        "deployment": deployment,
        "restrictedAccess": restricted,
    }
    try:
        data = web.validated(AgentCreate, form)
        agent = service.create(db, actor=console.actor, data=data)
        client_id, secret = service.read_credentials(db, actor=console.actor, agent=agent)
    except AppError as exc:
        if exc.status not in (400, 409):
            raise
        db.rollback()
        errors = web.form_errors(exc, known=_CREATE_FIELDS)
        form["description"] = description
        return _list(request, db, console, form=form, errors=errors, status=exc.status)
    return _credentials(request, agent, client_id, secret, created=True)


def _agent(db: SessionDep, console: Console, agent_id: str) -> Agent:
    return service.get(db, actor=console.actor, agent_id=parse_uuid(agent_id, field="agentId"))


def _allow_text(allow: AgentAllowList) -> str:
    lines = []
    for project_id, entry in allow.projects.items():
        envs = ", ".join(entry.environments)
        lines.append(f"{project_id}: {envs}" if envs else project_id)
    return "\n".join(lines)


def _detail(
    request: Request,
    db: SessionDep,
    console: Console,
    agent: Agent,
    *,
    form: dict[str, Any] | None = None,
    allow_text: str | None = None,
    errors: web.FormErrors | None = None,
    status: int = 200,
) -> Response:
    allow = service.get_allow_list(db, agent=agent)
    # names only of the projects this person may see (the API lists ids alone)
    visible = projects_service.visible_query(console.actor).where(
        Project.id.in_(list(allow.projects))
    )
    names = {p.id: p.name for p in db.scalars(visible)}
    read = AgentRead.model_validate(agent)
    return web.render(
        request,
        "agents/detail.html",
        {
            "agent": read,
            "allow": allow,
            "project_names": names,
            "allow_text": _allow_text(allow) if allow_text is None else allow_text,
            "form": form
            or {
                "name": read.name,
                "description": read.description or "",
                "restrictedAccess": read.restricted_access,
                "enableAutoUpdates": read.enable_auto_updates,
                "trackName": read.track_name or "",
            },
            "errors": errors,
        },
        status=status,
    )


@router.get("/{agent_id}")
def agent_page(request: Request, agent_id: str, console: Reader, db: SessionDep) -> Response:
    """One agent: its fields, status and allow-list; the edit, allow-list, credentials and
    delete forms for ``agent.write``."""
    return _detail(request, db, console, _agent(db, console, agent_id))


@router.post("/{agent_id}")
def update_agent(
    request: Request,
    agent_id: str,
    console: Writer,
    db: SessionDep,
    name: Annotated[str, Form(max_length=1024)] = "",
    description: Annotated[str, Form(max_length=4096)] = "",
    restricted: Annotated[bool, Form(alias="restrictedAccess")] = False,
    auto_updates: Annotated[bool, Form(alias="enableAutoUpdates")] = False,
    track_name: Annotated[str, Form(alias="trackName", max_length=256)] = "",
) -> Response:
    """Change the agent's name, description, access restriction, auto-updates or track (as
    ``PATCH /v1/agents/{agentId}``)."""
    agent = _agent(db, console, agent_id)
    form: dict[str, Any] = {
        "name": name,
        "description": description or None,
        "restrictedAccess": restricted,
        "enableAutoUpdates": auto_updates,
        "trackName": track_name or None,
    }
    if agent.cloud_provider == "snowflake":  # they take neither (DPC "Update an Agent")
        del form["enableAutoUpdates"], form["trackName"]
    try:
        data = web.validated(AgentUpdate, form)
        service.update(db, actor=console.actor, agent=agent, data=data)
    except AppError as exc:
        if exc.status not in (400, 409):
            raise
        db.rollback()
        shown = {**form, "description": description, "trackName": track_name}
        errors = web.form_errors(exc, known=tuple(form))
        agent = _agent(db, console, agent_id)
        return _detail(request, db, console, agent, form=shown, errors=errors, status=exc.status)
    web.flash(db, console, f"Agent {agent.name} saved.")
    return web.redirect(f"{web.PREFIX}/agents/{agent.id}")


def _parse_allow_list(text: str) -> AgentAllowList:
    """``<projectId>[: env, env]`` per line -> the allow-list.

    Raises:
        BadRequest: a line that is not of that form (violation ``allowlist``).
    """
    projects: dict[str, Any] = {}
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        project, _, envs = line.partition(":")
        try:
            pid = parse_uuid(project.strip(), field="allowlist")
        except BadRequest:
            problems.append(f"allowlist: line {number}: {project.strip()!r} is not a project id")
            continue
        projects[pid] = {"environments": [e.strip() for e in envs.split(",") if e.strip()]}
    if problems:
        raise BadRequest("The allow-list is not valid", violations=problems)
    return web.validated(AgentAllowList, {"projects": projects})


@router.post("/{agent_id}/allowlist")
def set_allow_list(
    request: Request,
    agent_id: str,
    console: Writer,
    db: SessionDep,
    allowlist: Annotated[str, Form(max_length=100_000)] = "",
) -> Response:
    """Replace the allow-list (as ``PUT /v1/agents/{agentId}/allowlist``)."""
    agent = _agent(db, console, agent_id)
    try:
        data = _parse_allow_list(allowlist)
        service.set_allow_list(db, actor=console.actor, agent=agent, data=data)
    except AppError as exc:
        if exc.status != 400:
            raise
        db.rollback()
        errors = web.FormErrors()
        for violation in exc.violations or [exc.detail]:
            errors.add("allowlist", violation.removeprefix("allowlist: "))
        agent = _agent(db, console, agent_id)
        return _detail(request, db, console, agent, allow_text=allowlist, errors=errors, status=400)
    web.flash(db, console, f"Allow-list of agent {agent.name} saved.")
    return web.redirect(f"{web.PREFIX}/agents/{agent.id}")


@router.post("/{agent_id}/credentials")
def refresh_credentials(
    request: Request, agent_id: str, console: Writer, db: SessionDep
) -> Response:
    """Give the agent a new client secret and show it once; the old one stops working."""
    agent = _agent(db, console, agent_id)
    client_id, secret = service.refresh_credentials(db, actor=console.actor, agent=agent)
    return _credentials(request, agent, client_id, secret, created=False)


@router.post("/{agent_id}/delete")
def delete_agent(
    request: Request,
    agent_id: str,
    console: Writer,
    db: SessionDep,
    confirm: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Delete the agent when ``confirm`` is its name; an agent in use is refused with the
    objects that use it."""
    agent = _agent(db, console, agent_id)
    errors = web.FormErrors()
    if confirm != agent.name:
        errors.add("confirm", f"Type the agent's name, {agent.name}, to delete it.")
        return _detail(request, db, console, agent, errors=errors, status=400)
    try:
        service.delete(db, actor=console.actor, agent=agent)
    except AppError as exc:
        if exc.status != 409:
            raise
        db.rollback()
        errors.add("confirm", exc.detail)
        agent = _agent(db, console, agent_id)
        return _detail(request, db, console, agent, errors=errors, status=409)
    web.flash(db, console, f"Agent {agent.name} deleted.")
    return web.redirect(f"{web.PREFIX}/agents")
