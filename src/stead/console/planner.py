"""The console's plan page runs the declarative tooling (``stead plan`` / ``stead apply``) as
the logged-in person, against this server, through ``/v1`` itself: the same planner, the same
API calls, permission checks and audit events as the CLI, with the person as the actor.

The SDK's client is given a short-lived bearer token of the person and an httpx transport that
hands each request to this process's ASGI app on its event loop, so no request leaves the
process. This module loads the SDK and the declarative tooling: the plan page imports it when it
is used, never at server start (tests/test_architecture.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import yaml
from starlette.types import ASGIApp

from stead.declarative.apply import apply_plan
from stead.declarative.plan import Plan, context_for, make_plan
from stead.declarative.spec import SpecError, StateFile, parse
from stead.declarative.state import read_state
from stead.sdk import Client, SteadError
from stead.warehouses import spec_for

#: Seconds one in-process API call may take before the page gives up.
CALL_TIMEOUT = 60.0
#: Lifetime of the token the page's calls carry, in seconds.
TOKEN_TTL = 600
#: The file name problems are reported under (the person pasted the text).
SOURCE = "document"


class InProcessTransport(httpx.BaseTransport):
    """An httpx transport that runs each request through ``app`` on the event loop ``loop``
    (the server's), from a worker thread: ``handle_request`` blocks until the app answers.

    Args:
        app: the ASGI application (the server's, with its middleware).
        loop: the running event loop the app serves on.
        client: the address the app sees as the caller (the person's browser), for audit events.
        request_id: sent as ``X-Request-ID`` with every request (the page's own id), so the
            audit events the calls write point at the console request.
    """

    def __init__(
        self,
        app: ASGIApp,
        loop: asyncio.AbstractEventLoop,
        client: tuple[str, int],
        request_id: str | None = None,
    ) -> None:
        self._asgi = httpx.ASGITransport(app=app, client=client)
        self._loop = loop
        self._request_id = request_id

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` to the app and wait for its whole answer."""
        body = request.read()

        async def call() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            headers = httpx.Headers(request.headers)
            if self._request_id:
                headers["X-Request-ID"] = self._request_id
            forwarded = httpx.Request(request.method, request.url, headers=headers, content=body)
            answer = await self._asgi.handle_async_request(forwarded)
            content = await answer.aread()
            return answer.status_code, answer.headers.raw, content

        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        status, headers, content = future.result(timeout=CALL_TIMEOUT)
        return httpx.Response(status, headers=headers, content=content)


@dataclass(frozen=True)
class Problem:
    """A problem with the document: ``line`` (1-based, None when it has no place in the
    text), ``field`` (its path, e.g. ``projects[0].environments[1].name``, or None) and
    ``message``."""

    line: int | None
    field: str | None
    message: str


@dataclass(frozen=True)
class Row:
    """One planned change as the page shows it: ``action`` (``create``, ``update``,
    ``replace``, ``delete``, ``no change``), ``label`` (``project "x" / environment "y"``) and
    ``details`` (one line per changed field; secrets say only ``changed``)."""

    action: str
    label: str
    details: list[str]


@dataclass(frozen=True)
class Outcome:
    """What planning (and applying) a document gave.

    Attributes:
        problems: what is wrong with the document (nothing was planned when ``rows`` is empty
            because of them), and what the plan asks that the API cannot do.
        rows: the planned changes, in the plan's display order.
        counts: how many changes of each action.
        digest: sha256 of the plan (changes and errors), carried by the Apply form.
        applied: how many changes were made (None when nothing was applied).
    """

    problems: list[Problem]
    rows: list[Row]
    counts: dict[str, int]
    digest: str
    applied: int | None = None


_WHERE = re.compile(r"^(?P<path>[A-Za-z_][\w]*(?:\[\d+\]|\.[A-Za-z_][\w]*)*): (?P<message>.*)$")
_STEP = re.compile(r"\.?([A-Za-z_]\w*)|\[(\d+)\]")


def _line_of(root: yaml.Node | None, path: str) -> int | None:
    """The 1-based line of the YAML node at ``path`` (``a.b[2].c``), or of the deepest node
    on the way that exists."""
    node, line = root, None
    for key, index in _STEP.findall(path):
        if node is None:
            break
        line = node.start_mark.line + 1
        if key and isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif index and isinstance(node, yaml.SequenceNode):
            position = int(index)
            node = node.value[position] if position < len(node.value) else None
        else:
            node = None
    return node.start_mark.line + 1 if node is not None else line


@dataclass(frozen=True)
class Reading:
    """A pasted document, read.

    Attributes:
        spec: the validated file, or None when it has problems or secrets.
        problems: what is wrong with it, each at its line and field.
        secrets: paths of the secret values it carries (the console takes none).
        shown: whether the page may show the text again: not when it holds a secret value, nor
            when it is not YAML (then nobody can tell whether it does).
    """

    spec: StateFile | None
    problems: list[Problem]
    secrets: list[str]
    shown: bool


def read_document(text: str) -> Reading:
    """Parse and validate ``text`` (the declarative file's YAML). No variables are given: a
    ``${NAME}`` is a problem (the console holds no one's environment)."""
    try:
        root = yaml.compose(text)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        return Reading(None, [Problem(line, None, f"not valid YAML: {reason}")], [], False)
    secrets = secret_fields(document)
    if secrets:
        return Reading(None, [], secrets, False)
    try:
        return Reading(parse(document, {}, source=SOURCE), [], [], True)
    except SpecError as exc:
        problems = []
        for text_line in exc.problems:
            rest = text_line.removeprefix(f"{SOURCE}: ")
            where = _WHERE.match(rest)
            if where:
                path = where["path"]
                problems.append(Problem(_line_of(root, path), path, where["message"]))
            else:
                problems.append(Problem(None, None, rest))
        return Reading(None, problems, [], True)


#: Property keys that hold a credential on any warehouse.
_SENSITIVE = frozenset().union(*(spec_for(w).sensitive for w in ("REDSHIFT", "SNOWFLAKE")))


def _entries(parent: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    """The mappings in the list ``parent[key]``, with their indexes (nothing when absent or
    not a list of mappings)."""
    items = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(items, list):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def secret_fields(document: Any) -> list[str]:
    """Paths of the secret values a parsed YAML ``document`` carries, valid or not: hosted
    secrets' values, repository tokens, and inline values of credential properties. The
    console does not take them (the page would show them back); they are set through the API,
    the CLI or the project's pages."""
    found: list[str] = []
    for p, project in _entries(document, "projects"):
        for n, secret in _entries(project, "secrets"):
            if secret.get("value") is not None:
                found.append(f"projects[{p}].secrets[{n}].value")
        repository = project.get("repository")
        if isinstance(repository, dict) and repository.get("token") is not None:
            found.append(f"projects[{p}].repository.token")
        for e, environment in _entries(project, "environments"):
            for o, override in _entries(environment, "connectionOverrides"):
                props = override.get("connectionProperties")
                for name, prop in props.items() if isinstance(props, dict) else []:
                    if name in _SENSITIVE and isinstance(prop, dict) and "value" in prop:
                        found.append(
                            f"projects[{p}].environments[{e}].connectionOverrides[{o}]"
                            f".connectionProperties.{name}.value"
                        )
    return found


def digest(plan: Plan) -> str:
    """sha256 (hex) of what ``plan`` would do and the errors it has."""
    body = {
        "changes": [[c.kind, c.name, c.project, c.action, c.details] for c in plan.changes],
        "errors": plan.errors,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _outcome(plan: Plan, applied: int | None = None) -> Outcome:
    rows = [Row(c.action, c.label, list(c.details)) for c in plan.changes]
    problems = [Problem(None, None, e) for e in plan.errors]
    return Outcome(problems, rows, plan.counts(), digest(plan), applied)


@contextmanager
def person_client(
    app: ASGIApp,
    loop: asyncio.AbstractEventLoop,
    *,
    base_url: str,
    token: str,
    client: tuple[str, int],
    request_id: str | None,
) -> Iterator[Client]:
    """An SDK client that calls ``app`` in this process with the person's bearer ``token``;
    each call carries the page's ``X-Request-ID`` so the audit events it writes point at the
    console request."""
    transport = InProcessTransport(app, loop, client, request_id)
    with Client(base_url, token=token, transport=transport, max_retries=2) as sdk:
        yield sdk


def run(sdk: Client, spec: StateFile, *, prune: bool, apply_digest: str | None) -> Outcome:
    """Plan ``spec`` against the server's state as ``sdk``'s person sees it; with
    ``apply_digest``, apply the plan when its digest is still that one.

    Raises:
        PlanChanged: the plan is not the one previewed (its new :class:`Outcome` attached).
        stead.sdk.SteadError: an API call failed (changes made before it stay made).
    """
    state = read_state(sdk, names=[p.name for p in spec.projects])
    plan = make_plan(spec, state, prune=prune)
    if apply_digest is None:
        return _outcome(plan)
    if digest(plan) != apply_digest:
        raise PlanChanged(_outcome(plan))
    if plan.errors:  # never previewed with an Apply button: nothing is applied
        return _outcome(plan)
    return _outcome(plan, apply_plan(plan, context_for(sdk, state)))


class PlanChanged(Exception):
    """Apply refused: the plan differs from the previewed one; ``outcome`` is the new plan."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__("the plan changed since the preview")
        self.outcome = outcome


__all__ = [
    "InProcessTransport",
    "Outcome",
    "PlanChanged",
    "Problem",
    "Row",
    "SteadError",
    "person_client",
    "Reading",
    "read_document",
    "run",
    "secret_fields",
]
