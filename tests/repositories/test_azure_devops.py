"""Repository association through Azure DevOps (DPC ``providerParameters``)
against the Azure DevOps fake over real HTTP, on SQLite and PostgreSQL: success, every distinct
answer, no deploy keys, and a canary token that never leaks."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dulwich import porcelain
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from stead.app import create_app
from stead.errors import UpstreamError
from stead.repositories import azure_devops as provider
from stead.settings import Settings
from tests.support.azure_devops_fake import (  # noqa: F401 - fixture
    AzureDevOpsFake,
    azure_devops_fake_server,
)
from tests.support.git_server import GitServer
from tests.support.postgres import free_port
from tests.support.provider_checks import (
    TOKEN,
    assert_never_leaked,
    audit_actions,
    check_answer,
    count,
)

ORG = "acme-data"
TENANT = "72F988BF-86F1-41AF-91AB-2D7CD011DB47"


@pytest.fixture
def azure(azure_devops_fake_server: AzureDevOpsFake) -> AzureDevOpsFake:  # noqa: F811
    """The Azure DevOps fake, emptied for this test."""
    azure_devops_fake_server.reset()
    return azure_devops_fake_server


@pytest.fixture
def settings(settings: Settings, azure: AzureDevOpsFake) -> Settings:
    """The repository tests' settings with Azure DevOps at the fake."""
    return settings.model_copy(update={"azure_devops_url": azure.url})


@pytest.fixture
def repo_id(azure: AzureDevOpsFake) -> str:
    """The id of ``acme-data/Finance/finance-pipelines`` on the fake."""
    return azure.add_repo(ORG, "Finance", "finance-pipelines", default_branch="trunk")


def _body(repo_id: str, organization: str = ORG, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "azure-devops",
        "repositoryName": "azure-repo-name",
        "providerParameters": {
            "organization": organization,
            "repositoryId": repo_id,
            "tenantId": TENANT,
            **extra,
        },
    }


def _basic(token: str) -> str:
    return "Basic " + base64.b64encode(f":{token}".encode()).decode()


def test_associate_read_recheck_and_remove(
    http: TestClient,
    admin: dict[str, str],
    azure: AzureDevOpsFake,
    repo_id: str,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    azure.add_token("pat-good", repos=[repo_id])
    url = f"/v1/projects/{project_id}/repositories"
    resp = http.post(url, json=_body(repo_id.upper()), headers={**admin, TOKEN: "pat-good"})
    assert resp.status_code == 201, resp.text
    web = f"https://dev.azure.com/{ORG}/Finance/_git/finance-pipelines"
    expected = {
        "provider": "azure-devops",
        "repositoryName": "azure-repo-name",
        "providerParameters": {
            "organization": ORG,
            "repositoryId": repo_id,
            "tenantId": TENANT.lower(),
        },
        "defaultBranch": "trunk",
        "htmlUrl": web,
        "cloneUrl": web,  # remoteUrl without its "acme-data@" user name
    }
    assert {k: resp.json()[k] for k in expected} == expected
    request = azure.requests[0]
    assert request.path == f"/{ORG}/_apis/git/repositories/{repo_id}?api-version=7.1"
    assert request.headers["Authorization"] == _basic("pat-good")
    assert request.headers["X-TFS-FedAuthRedirect"] == "Suppress"
    got = http.get(url, headers=admin).json()
    assert {k: got[k] for k in expected} == expected

    azure.repos[repo_id].default_branch = "release"
    azure.add_token("pat-second", repos=[repo_id])
    assert http.post(f"{url}/token", headers={**admin, TOKEN: "pat-second"}).status_code == 204
    assert http.get(url, headers=admin).json()["defaultBranch"] == "release"
    assert azure.requests[-1].headers["Authorization"] == _basic("pat-second")

    assert http.delete(url, headers=admin).status_code == 204
    assert count(session_factory) == 0
    actions = audit_actions(session_factory)
    assert actions[0] == "repository.associated" and actions[-1] == "repository.removed"


def test_empty_repository_and_no_tenant(
    http: TestClient, admin: dict[str, str], azure: AzureDevOpsFake, project_id: str
) -> None:
    empty = azure.add_repo(ORG, "Finance", "empty", default_branch=None)
    azure.add_token("pat-empty", repos=[empty])
    body = _body(empty)
    del body["providerParameters"]["tenantId"]
    resp = http.post(
        f"/v1/projects/{project_id}/repositories",
        json={**body, "provider": "Azure-DevOps"},
        headers={**admin, TOKEN: "pat-empty"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["provider"] == "azure-devops"
    assert resp.json()["defaultBranch"] is None
    assert resp.json()["providerParameters"] == {"organization": ORG, "repositoryId": empty}


# (name, set-up, status, field a violation must name, Azure DevOps text that must not leak)
Case = tuple[str, Callable[[AzureDevOpsFake, str, str], None], int, str | None, str]
CASES: list[Case] = [
    ("unknown token, sign-in page", lambda a, t, r: None, 400, TOKEN, "Sign in"),
    (
        "unknown token, redirect",
        lambda a, t, r: setattr(a, "redirect_to_sign_in", True),
        400,
        TOKEN,
        "_signin",
    ),
    ("expired", lambda a, t, r: a.add_token(t, expired=True), 400, TOKEN, "Access Denied"),
    (
        "no code scope",
        lambda a, t, r: a.add_token(t, repos=[r], code_scope=False),
        403,
        TOKEN,
        "TF400813",
    ),
    (
        "conditional access",
        lambda a, t, r: a.add_token(t, repos=[r], forbidden=True),
        403,
        TOKEN,
        "VS403463",
    ),
    (
        "repository invisible",
        lambda a, t, r: a.add_token(t),
        400,
        "providerParameters.repositoryId",
        "TF401019",
    ),
    ("rate limited", lambda a, t, r: a.add_token(t, rate_limit=True), 503, None, "TF400733"),
    ("server error", lambda a, t, r: a.add_token(t, status=500), 502, None, "Service"),
    ("unavailable", lambda a, t, r: a.add_token(t, status=503), 502, None, "Service"),
    ("timeout", lambda a, t, r: a.add_token(t, repos=[r], delay=5), 504, None, ""),
]


@pytest.mark.parametrize("operation", ["associate", "token"])
def test_distinct_answers(
    http: TestClient,
    admin: dict[str, str],
    azure: AzureDevOpsFake,
    repo_id: str,
    project_id: str,
    session_factory: sessionmaker[Session],
    operation: str,
) -> None:
    url = f"/v1/projects/{project_id}/repositories"
    if operation == "token":
        azure.add_token("pat-first", repos=[repo_id])
        resp = http.post(url, json=_body(repo_id), headers={**admin, TOKEN: "pat-first"})
        assert resp.status_code == 201, resp.text
    before = http.get(url, headers=admin).json() if operation == "token" else None
    for name, setup, status, field, leak in CASES:
        azure.redirect_to_sign_in = False
        token = "pat-" + name.replace(" ", "-").replace(",", "")
        setup(azure, token, repo_id)
        if operation == "associate":
            resp = http.post(url, json=_body(repo_id), headers={**admin, TOKEN: token})
        else:
            resp = http.post(f"{url}/token", headers={**admin, TOKEN: token})
        body = check_answer(resp, status, field, leak, retry_after=[30])
        if status == 403:
            assert "Code (Read) scope" in body["violations"][0], name
    if operation == "associate":
        assert count(session_factory) == 0 and audit_actions(session_factory) == []
    else:
        assert http.get(url, headers=admin).json() == before
        assert audit_actions(session_factory) == ["repository.associated"]


def test_unknown_organization_and_repository(
    http: TestClient, admin: dict[str, str], azure: AzureDevOpsFake, repo_id: str, project_id: str
) -> None:
    azure.add_token("pat-ok", repos=[repo_id])
    url = f"/v1/projects/{project_id}/repositories"
    headers = {**admin, TOKEN: "pat-ok"}
    resp = http.post(url, json=_body(repo_id, "nobody-org"), headers=headers)
    check_answer(resp, 400, "providerParameters.organization", "cannot be found")
    other = azure.add_repo("other-org", "X", "elsewhere")
    azure.add_token("pat-ok", repos=[repo_id, other])
    resp = http.post(url, json=_body(other), headers=headers)  # not in this organization
    check_answer(resp, 400, "providerParameters.repositoryId", "TF401019")


def test_unreachable_and_invalid_parameters(
    settings: Settings,
    admin: dict[str, str],
    azure: AzureDevOpsFake,
    repo_id: str,
    project_id: str,
    session_factory: sessionmaker[Session],
) -> None:
    url = f"/v1/projects/{project_id}/repositories"
    down = settings.model_copy(update={"azure_devops_url": f"http://127.0.0.1:{free_port()}"})
    with TestClient(create_app(down)) as client:
        resp = client.post(url, json=_body(repo_id), headers={**admin, TOKEN: "pat-x"})
        check_answer(resp, 502, None, "")
        invalid = [
            (_body("existing-repo-id"), "providerParameters.repositoryId"),
            (_body(repo_id, organization=""), "providerParameters.organization"),
            (_body(repo_id, organization="acme/data"), "providerParameters.organization"),
            (_body(repo_id, organization="-acme"), "providerParameters.organization"),
            (_body(repo_id, tenantId="my-tenant-id"), "providerParameters.tenantId"),
            (_body(repo_id, ownerName="acme"), "providerParameters.ownerName"),
            ({**_body(repo_id), "providerParameters": {}}, "providerParameters.organization"),
            ({**_body(repo_id), "providerParameters": {}}, "providerParameters.repositoryId"),
        ]
        for body, field in invalid:
            check_answer(client.post(url, json=body, headers={**admin, TOKEN: "t"}), 400, field, "")
    assert azure.requests == []
    assert count(session_factory) == 0


def test_no_deploy_keys(azure: AzureDevOpsFake, repo_id: str, settings: Settings) -> None:
    azure.add_token("pat-ok", repos=[repo_id])
    params = {"organization": ORG, "repositoryId": repo_id}
    info = provider.check(
        SecretStr("pat-ok"), params, repository_name="azure-repo-name", settings=settings
    )
    assert info.no_deploy_key_reason == provider.NO_DEPLOY_KEYS
    with pytest.raises(UpstreamError):
        provider.add_deploy_key(
            SecretStr("pat-ok"),
            params,
            repository_name="azure-repo-name",
            title="stead",
            public_key_openssh="ssh-ed25519 AAAA",
            read_only=True,
            settings=settings,
        )
    calls = len(azure.requests)
    provider.remove_deploy_key(
        SecretStr("pat-ok"), params, repository_name="r", key_id="1", settings=settings
    )
    assert len(azure.requests) == calls


CANARY = "azdopatCANARY7f3e9a1c5b2d8e4f6a0b9cLEAK"


def test_canary_token_never_leaks(
    http: TestClient,
    admin: dict[str, str],
    azure: AzureDevOpsFake,
    repo_id: str,
    project_id: str,
    logs: pytest.LogCaptureFixture,
    session_factory: sessionmaker[Session],
) -> None:
    url = f"/v1/projects/{project_id}/repositories"
    headers = {**admin, TOKEN: CANARY}
    responses = [http.post(url, json=_body(repo_id), headers=headers)]
    steps: list[tuple[dict[str, Any], int]] = [
        ({"expired": True}, 400),
        ({}, 400),
        ({"repos": [repo_id], "code_scope": False}, 403),
        ({"rate_limit": True}, 503),
        ({"status": 500}, 502),
        ({"repos": [repo_id], "delay": 5}, 504),
        ({"repos": [repo_id]}, 201),
    ]
    for setup, status in steps:
        azure.add_token(CANARY, **setup)
        resp = http.post(url, json=_body(repo_id), headers=headers)
        assert resp.status_code == status, resp.text
        responses.append(resp)
    responses.append(http.post(f"{url}/token", headers=headers))
    responses.append(http.get(url, headers=admin))
    assert responses[-2].status_code == 204
    assert azure.requests[-1].headers["Authorization"] == _basic(CANARY)
    encoded = _basic(CANARY).removeprefix("Basic ")
    assert_never_leaked([CANARY, encoded], responses, logs, session_factory)


def test_initialize_without_a_deploy_key(
    http: TestClient,
    admin: dict[str, str],
    azure: AzureDevOpsFake,
    git_server: GitServer,
    project_id: str,
    repo_name: str,
    tmp_path: Path,
) -> None:
    git_server.create_repo(repo_name, branches=[])
    git_server.add_token("pat-init", read=[repo_name])
    empty = azure.add_repo(
        ORG,
        "Finance",
        repo_name,
        default_branch=None,
        remote_url=f"http://{ORG}@{git_server.url.removeprefix('http://')}/{repo_name}.git",
    )
    azure.add_token("pat-init", repos=[empty])
    url = f"/v1/projects/{project_id}/repositories"
    resp = http.post(
        f"{url}?initialize=true", json=_body(empty), headers={**admin, TOKEN: "pat-init"}
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["defaultBranch"] == "main"
    assert body["cloneUrl"] == f"{git_server.url}/{repo_name}.git"
    assert body["deployKey"] is None
    assert body["deployKeyReason"] == provider.NO_DEPLOY_KEYS
    clone = porcelain.clone(
        f"{git_server.url}/{repo_name}.git",
        str(tmp_path / "clone"),
        username="reader",
        password="pat-init",
        errstream=porcelain.NoneStream(),
    )
    assert porcelain.active_branch(clone) == b"main"
    tree = clone[clone[clone.head()].tree]  # type: ignore[attr-defined]
    assert {b"README.md", b"stead.yaml"} <= {entry.path for entry in tree.iteritems()}

    # a token re-check keeps the association without a key; DELETE with the token is fine
    assert http.post(f"{url}/token", headers={**admin, TOKEN: "pat-init"}).status_code == 204
    assert http.get(url, headers=admin).json()["deployKeyReason"] == provider.NO_DEPLOY_KEYS
    assert http.delete(url, headers={**admin, TOKEN: "pat-init"}).status_code == 204
