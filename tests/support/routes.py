"""The app's API routes and the permission each one declares (read from its dependencies)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from stead.app import API_ROUTERS
from stead.identity.deps import REQUIREMENTS, current_actor

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Scopes in the order the most specific wins (an environment check includes a project check).
_SPECIFICITY = ("environment", "audit", "project", "account")


@dataclass(frozen=True)
class ApiRoute:
    """One method of one ``/v1`` route: ``path`` is the template, e.g. ``/v1/projects/{projectId}``.

    ``scope``/``permission`` come from the route's permission dependency; ``authenticated``
    says whether it needs a bearer token at all.
    """

    method: str
    path: str
    scope: str | None
    permission: str | None
    authenticated: bool

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def _calls(dependant: Dependant) -> Iterator[object]:
    for dep in dependant.dependencies:
        yield dep.call
        yield from _calls(dep)


def api_routes(app: FastAPI) -> list[ApiRoute]:
    """Every method of every ``/v1`` route, sorted by path then method.

    Read from the routers the app mounts under ``/v1`` and ``/dpc/v1`` (``API_ROUTERS``), and
    checked against the app's OpenAPI document, so nothing the app serves is left out.
    """
    out = []
    for route in (r for router in API_ROUTERS for r in router.routes):
        assert isinstance(route, APIRoute)
        calls = list(_calls(route.dependant))
        found = [REQUIREMENTS[c] for c in calls if c in REQUIREMENTS]  # type: ignore[index]
        found.sort(key=lambda r: _SPECIFICITY.index(r[0]))
        scope, permission = found[0] if found else (None, None)
        for method in sorted(route.methods - {"HEAD"}):
            out.append(
                ApiRoute(method, "/v1" + route.path, scope, permission, current_actor in calls)
            )
    served = {
        f"{method.upper()} {path}"
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/v1/")
        for method in item
    }
    assert served == {r.key for r in out}
    return sorted(out, key=lambda r: (r.path, r.method))
