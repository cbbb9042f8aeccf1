"""The outbound policy in front of git providers and remotes: ``file://``, ``ssh://`` and plain
``http://`` remotes are off until an admin turns them on, loopback servers are refused until
allowed, each provider API is refused on a refused address, and no redirect or ``clone_url``
leads Stead where the policy does not allow."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.repositories.models import Repository
from tests.support.factories import assert_problem
from tests.support.git_server import GitServer
from tests.support.github_fake import ALL, GitHubFake
from tests.support.outbound import Redirector, redirector  # noqa: F401 - fixture

TOKEN = "Git-Provider-Access-Token"
REFUSED = "https://stead.dev/problems/destination-refused"
URL = "providerParameters.url"


def _git(url: str) -> dict[str, Any]:
    return {"provider": "git", "repositoryName": "pipelines", "providerParameters": {"url": url}}


def _count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Repository)) or 0


def _configure(http: TestClient, **changes: Any) -> None:
    app: Any = http.app
    app.state.settings = app.state.settings.model_copy(update=changes)


def _refused(resp: Any, field: str, *words: str) -> dict[str, Any]:
    body = assert_problem(resp, 400, field)
    assert body["type"] == REFUSED, body
    for word in words:
        assert word in body["detail"], body
    return body


def test_remote_schemes_are_off_until_enabled(
    http: TestClient,
    admin: dict[str, str],
    git_server: GitServer,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    repositories = f"/v1/projects/{project_id}/repositories"
    bare = git_server.create_repo("pipelines", branches=["main"])
    git_server.add_token("tok-read", read=["pipelines"])
    headers = {**admin, TOKEN: "tok-read"}
    _configure(
        http,
        outbound_git_allow_http=False,
        outbound_git_allow_ssh=False,
        outbound_git_allow_file=False,
    )
    cases = {
        f"{git_server.url}/pipelines.git": "STEAD_OUTBOUND_GIT_ALLOW_HTTP",
        "ssh://git@127.0.0.1:22/srv/pipelines.git": "STEAD_OUTBOUND_GIT_ALLOW_SSH",
        f"file://{bare}": "STEAD_OUTBOUND_GIT_ALLOW_FILE",
    }
    for remote, setting in cases.items():
        _refused(http.post(repositories, json=_git(remote), headers=headers), URL, setting)
    assert _count(session_factory) == 0
    # An admin allows http:// and file://: the same requests go through.
    _configure(http, outbound_git_allow_http=True, outbound_git_allow_file=True)
    resp = http.post(repositories, json=_git(f"{git_server.url}/pipelines.git"), headers=headers)
    assert resp.status_code == 201, resp.text
    other = {**_git(f"file://{bare}"), "repositoryName": "local"}
    resp = http.post(f"/v1/projects/{project_id}/repositories", json=other, headers=headers)
    assert resp.status_code in (201, 409), resp.text


def test_a_loopback_git_server_is_refused_until_allowed(
    http: TestClient,
    admin: dict[str, str],
    git_server: GitServer,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    git_server.create_repo("pipelines", branches=["main"])
    git_server.add_token("tok-read", read=["pipelines"])
    headers = {**admin, TOKEN: "tok-read"}
    remote = f"{git_server.url}/pipelines.git"
    url = f"/v1/projects/{project_id}/repositories"
    _configure(http, outbound_allowed_networks="")
    _refused(http.post(url, json=_git(remote), headers=headers), URL, "loopback")
    # Through a name that resolves to it (localhost, from /etc/hosts), and IPv4-mapped.
    named = remote.replace("127.0.0.1", "localhost")
    _refused(http.post(url, json=_git(named), headers=headers), URL, "loopback")
    mapped = remote.replace("127.0.0.1", "[::ffff:127.0.0.1]")
    _configure(http, outbound_git_hosts="*")
    _refused(http.post(url, json=_git(mapped), headers=headers), URL, "loopback")
    # A host outside the allowed ones is refused by its name, before any lookup.
    _configure(http, outbound_git_hosts="", outbound_allowed_networks="127.0.0.0/8")
    resp = http.post(url, json=_git(named), headers=headers)
    _refused(resp, URL, "STEAD_OUTBOUND_GIT_HOSTS")
    assert _count(session_factory) == 0
    _configure(http, outbound_allowed_networks="127.0.0.1", outbound_git_hosts="127.0.0.1")
    assert http.post(url, json=_git(remote), headers=headers).status_code == 201


@pytest.mark.parametrize(
    ("provider", "setting", "parameters"),
    [
        ("github", "github_api_url", {"ownerName": "acme-data"}),
        ("github-enterprise", "github_enterprise_api_url", {"ownerName": "acme-data"}),
        ("gitlab", "gitlab_api_url", {"namespace": "acme-data"}),
        (
            "azure-devops",
            "azure_devops_url",
            {"organization": "acme", "repositoryId": "3f2504e0-4f89-41d3-9a0c-0305e82c3301"},
        ),
    ],
)
def test_provider_apis_on_loopback_are_refused_until_allowed(
    http: TestClient,
    admin: dict[str, str],
    project_id: str,
    provider: str,
    setting: str,
    parameters: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    body = {"provider": provider, "repositoryName": "pipelines", "providerParameters": parameters}
    url = f"/v1/projects/{project_id}/repositories"
    headers = {**admin, TOKEN: "tok"}
    # Nothing listens on port 9: only the policy stands between a request and a refused
    # connection.
    _configure(http, **{setting: "http://127.0.0.1:9", "outbound_allowed_networks": ""})
    _refused(http.post(url, json=body, headers=headers), "provider", "loopback")
    _configure(http, outbound_allowed_networks="127.0.0.0/8")
    assert assert_problem(http.post(url, json=body, headers=headers), 502)
    assert _count(session_factory) == 0


def test_redirects_and_clone_urls_are_checked(
    http: TestClient,
    admin: dict[str, str],
    github: GitHubFake,
    project_id: str,
    redirector: Redirector,  # noqa: F811 - fixture
    session_factory: sessionmaker[Session],
) -> None:
    url = f"/v1/projects/{project_id}/repositories"
    headers = {**admin, TOKEN: "tok-full"}
    # A git server that redirects to the cloud metadata service.
    redirector.target = "http://169.254.169.254/latest/meta-data/"
    _configure(http, outbound_git_hosts="*")
    resp = http.post(url, json=_git(f"{redirector.url}/x.git"), headers=headers)
    _refused(resp, URL, "cloud metadata")
    # A provider API that redirects there.
    _configure(http, github_api_url=redirector.url)
    github_body = {
        "provider": "github",
        "repositoryName": "full",
        "providerParameters": {"ownerName": "acme-data"},
    }
    _refused(http.post(url, json=github_body, headers=headers), "provider", "cloud metadata")
    # A provider answer whose clone_url points inside: ?initialize=true does not push there.
    _configure(http, github_api_url=github.url)
    github.add_repo("acme-data/full", clone_url="http://10.1.2.3/acme-data/full.git")
    github.add_token("tok-full", access={"acme-data/full": ALL})
    resp = http.post(f"{url}?initialize=true", json=github_body, headers=headers)
    _refused(resp, "repositoryName", "private")
    assert github.writes == [] and _count(session_factory) == 0
