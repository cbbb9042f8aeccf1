"""Every route of the project, environment and members pages declares the permission of the ``/v1``
route it mirrors (docs/permissions.md), read from its dependencies as the ``/v1`` table is."""

from __future__ import annotations

from pathlib import Path

from fastapi.routing import APIRoute

from stead.app import create_app
from stead.console.pages import members, project
from stead.identity.deps import REQUIREMENTS
from stead.settings import Settings
from tests.support.routes import _calls, api_routes

P = "/v1/projects/{projectId}"
E = P + "/environments/{environmentName}"
#: console route -> the /v1 route whose permission it must declare.
MIRRORS = {
    "GET /projects/{projectId}": f"GET {P}",
    "POST /projects/{projectId}/rename": f"PATCH {P}",
    "POST /projects/{projectId}/delete": f"DELETE {P}",
    "GET /projects/{projectId}/environments/{environmentName}": f"GET {E}",
    "POST /projects/{projectId}/environments/{environmentName}": f"PATCH {E}",
    "POST /projects/{projectId}/environments/{environmentName}/connection-test": (
        f"POST {E}/connection-test"
    ),
    "GET /projects/{projectId}/environments/{environmentName}/profile": f"GET {E}/profile",
    "POST /projects/{projectId}/environments/{environmentName}/access": (
        f"PUT {E}/access/{{userId}}"
    ),
    "POST /projects/{projectId}/environments/{environmentName}/access/{userId}/remove": (
        f"DELETE {E}/access/{{userId}}"
    ),
    "GET /projects/{projectId}/members": f"GET {P}/members",
    "POST /projects/{projectId}/members/{member_id}/role": f"PATCH {P}/members/{{memberId}}",
    "POST /projects/{projectId}/members/{member_id}/remove": f"DELETE {P}/members/{{memberId}}",
    "POST /projects/{projectId}/members/invitations/{invitation_id}/revoke": (
        f"DELETE {P}/invitations/{{invitationId}}"
    ),
    "POST /projects/{projectId}/members/invite": f"POST {P}/invitations",
}


def test_each_page_declares_the_permission_of_its_v1_route(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/s.db"))
    v1 = {r.key: r.permission for r in api_routes(app)}
    declared = {}
    for route in (*project.router.routes, *members.router.routes):
        assert isinstance(route, APIRoute)
        found = {REQUIREMENTS[c][1] for c in _calls(route.dependant) if c in REQUIREMENTS}
        for method in route.methods - {"HEAD"}:
            declared[f"{method} {route.path}"] = found
    assert set(declared) == set(MIRRORS)
    for key, mirrored in MIRRORS.items():
        permission = v1[mirrored]
        assert permission in declared[key], key
        # the page needs nothing more, but to show its environment (environment.read), which
        # the permission to manage a project's people always comes with (an Owner is admin)
        assert declared[key] - {permission, "project.read"} <= {"environment.read"}, key
