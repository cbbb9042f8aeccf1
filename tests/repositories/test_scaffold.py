"""``?initialize=true``: the first commit pushed over git smart HTTP (dulwich) to an empty
repository, cloned back with dulwich; against ``git http-backend`` directly (``git`` provider)
and behind the GitHub fake (``github``), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from dulwich import porcelain
from dulwich.repo import Repo
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stead.declarative.spec import parse
from stead.repositories.models import Repository
from tests.environments.test_environments import arrange
from tests.support.factories import assert_problem, login, new_user
from tests.support.git_server import GitServer, git
from tests.support.github_fake import ALL, READ_ONLY, GitHubFake

TOKEN = "Git-Provider-Access-Token"


def _count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Repository)) or 0


def _clone(git_server: GitServer, name: str, token: str, target: Path) -> Repo:
    return porcelain.clone(
        f"{git_server.url}/{name}.git",
        str(target),
        username="reader",
        password=token,
        depth=None,
        errstream=porcelain.NoneStream(),
    )


def _tree(repo: Repo) -> dict[str, bytes]:
    """Every file of HEAD's tree by path."""
    files = {}
    for entry in repo.object_store.iter_tree_contents(repo[repo.head()].tree):  # type: ignore[attr-defined]
        files[entry.path.decode()] = repo[entry.sha].as_raw_string()
    return files


def test_git_remote_initialized_and_cloned_back(
    http: TestClient,
    admin: dict[str, str],
    git_server: GitServer,
    repo_name: str,
    tmp_path: Path,
    session_factory: sessionmaker[Session],
) -> None:
    arranged = arrange(http, admin, "redshift")
    assert http.post(arranged.base, json=arranged.body, headers=admin).status_code == 201
    second = {**arranged.body, "name": "dev tier", "displayName": "Development"}
    assert http.post(arranged.base, json=second, headers=admin).status_code == 201
    git_server.create_repo(repo_name, branches=[])
    git_server.add_token("tok-init", read=[repo_name])
    remote = f"{git_server.url}/{repo_name}.git"
    url = f"/v1/projects/{arranged.project_id}/repositories"
    body = {"provider": "git", "repositoryName": repo_name, "providerParameters": {"url": remote}}

    resp = http.post(f"{url}?initialize=true", json=body, headers={**admin, TOKEN: "tok-init"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["defaultBranch"] == "main"
    assert git_server.usernames[-1] == "x-access-token"

    clone = _clone(git_server, repo_name, "tok-init", tmp_path / "clone")
    assert porcelain.active_branch(clone) == b"main"
    assert set(clone.refs.as_dict(b"refs/heads")) == {b"main"}
    files = _tree(clone)
    assert sorted(files) == [
        "README.md",
        "environments/dev tier/README.md",
        "environments/prod/README.md",
        "stead.yaml",
    ]
    project = http.get(f"/v1/projects/{arranged.project_id}", headers=admin).json()
    assert files["README.md"].decode().startswith(f"# {project['name']}\n")
    assert "Development" in files["environments/dev tier/README.md"].decode()
    commit = clone[clone.head()]
    assert commit.author == b"Stead <stead@localhost>" and not commit.parents  # type: ignore[attr-defined]

    # stead.yaml is the declarative format, valid, describing this project
    document = yaml.safe_load(files["stead.yaml"])
    state = parse(document, {})
    (described,) = state.projects
    assert described.name == project["name"]
    assert [e.name for e in described.environments] == ["prod", "dev tier"]
    assert [c.name for c in described.connections] == ["finance-dwh-prod"]
    assert described.repository is not None
    assert described.repository.provider_parameters == {"url": remote}
    assert [a.name for a in state.agents] == [
        http.get(f"/v1/agents/{arranged.agent_id}", headers=admin).json()["name"]
    ]
    assert "secretName: finance-prod-redshift" in files["stead.yaml"].decode()
    assert "etl_service" in files["stead.yaml"].decode()  # plain properties are written
    assert _count(session_factory) == 1


def test_not_empty_is_409_and_nothing_pushed(
    http: TestClient,
    admin: dict[str, str],
    git_server: GitServer,
    github: GitHubFake,
    project_id: str,
    repo_name: str,
    session_factory: sessionmaker[Session],
) -> None:
    bare = git_server.create_repo(repo_name, branches=["main", "dev"])
    before = git("for-each-ref", cwd=bare)
    git_server.add_token("tok-full", read=[repo_name])
    url = f"/v1/projects/{project_id}/repositories?initialize=true"
    remote = f"{git_server.url}/{repo_name}.git"
    body = {"provider": "git", "repositoryName": repo_name, "providerParameters": {"url": remote}}
    problem = assert_problem(http.post(url, json=body, headers={**admin, TOKEN: "tok-full"}), 409)
    assert problem["violations"] == ["initialize: the repository already has commits"]
    assert git("for-each-ref", cwd=bare) == before
    assert _count(session_factory) == 0

    # through GitHub: refused before any deploy key is created
    github.add_repo("acme-data/full", clone_url=remote)
    github.add_token("tok-full", access={"acme-data/full": ALL})
    body = {
        "provider": "github",
        "repositoryName": "full",
        "providerParameters": {"ownerName": "acme-data"},
    }
    assert_problem(http.post(url, json=body, headers={**admin, TOKEN: "tok-full"}), 409)
    assert github.keys("acme-data/full") == [] and github.writes == []
    assert git("for-each-ref", cwd=bare) == before
    assert _count(session_factory) == 0


def test_github_initialized_on_its_default_branch_with_a_deploy_key(
    http: TestClient,
    admin: dict[str, str],
    git_server: GitServer,
    github: GitHubFake,
    project_id: str,
    repo_name: str,
    tmp_path: Path,
) -> None:
    git_server.create_repo(repo_name, head="trunk", branches=[])
    git_server.add_token("ghp_init", read=[repo_name])
    full = f"acme-data/{repo_name}"
    github.add_repo(full, default_branch="trunk", clone_url=f"{git_server.url}/{repo_name}.git")
    github.add_token("ghp_init", access={full: ALL})
    body = {
        "provider": "github",
        "repositoryName": repo_name,
        "providerParameters": {"ownerName": "acme-data"},
    }
    resp = http.post(
        f"/v1/projects/{project_id}/repositories?initialize=true",
        json=body,
        headers={**admin, TOKEN: "ghp_init"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["defaultBranch"] == "trunk"
    assert resp.json()["deployKey"]["id"] == str(github.keys(full)[0]["id"])
    assert git_server.usernames[-1] == "x-access-token"
    clone = _clone(git_server, repo_name, "ghp_init", tmp_path / "clone")
    assert porcelain.active_branch(clone) == b"trunk"
    assert set(clone.refs.as_dict(b"refs/heads")) == {b"trunk"}
    files = _tree(clone)
    assert sorted(files) == ["README.md", "stead.yaml"]  # a project without environments
    document: dict[str, Any] = yaml.safe_load(files["stead.yaml"])
    assert document["projects"][0]["repository"] == {
        "provider": "github",
        "repositoryName": repo_name,
        "providerParameters": {"ownerName": "acme-data"},
    }
    assert "deploy-key" not in files["stead.yaml"].decode()


def test_push_refused_or_failing(
    http: TestClient,
    admin: dict[str, str],
    git_server: GitServer,
    github: GitHubFake,
    project_id: str,
    repo_name: str,
    session_factory: sessionmaker[Session],
) -> None:
    bare = git_server.create_repo(repo_name, branches=[])
    remote = f"{git_server.url}/{repo_name}.git"
    url = f"/v1/projects/{project_id}/repositories?initialize=true"
    body = {"provider": "git", "repositoryName": repo_name, "providerParameters": {"url": remote}}

    # the token may read but not push: 403 naming the push permission
    git_server.add_token("tok-read", read_only=[repo_name])
    problem = assert_problem(
        http.post(url, json=body, headers={**admin, TOKEN: "tok-read"}), 403, TOKEN
    )
    assert "push (write)" in problem["violations"][0]
    assert "Permission denied" not in str(problem)

    # GitHub says read-only (no admin: no deploy key either); the push is refused
    full = f"acme-data/{repo_name}"
    github.add_repo(full, clone_url=remote)
    github.add_token("tok-read", access={full: READ_ONLY})
    gh_body = {
        "provider": "github",
        "repositoryName": repo_name,
        "providerParameters": {"ownerName": "acme-data"},
    }
    assert_problem(http.post(url, json=gh_body, headers={**admin, TOKEN: "tok-read"}), 403, TOKEN)
    assert github.writes == []
    assert git("for-each-ref", cwd=bare) == ""
    assert _count(session_factory) == 0


def test_initialize_must_be_a_boolean(
    http: TestClient, admin: dict[str, str], project_id: str, session_factory: sessionmaker[Session]
) -> None:
    body = {
        "provider": "git",
        "repositoryName": "x",
        "providerParameters": {"url": "https://git.example.com/x.git"},
    }
    resp = http.post(
        f"/v1/projects/{project_id}/repositories?initialize=maybe",
        json=body,
        headers={**admin, TOKEN: "tok"},
    )
    assert_problem(resp, 400, "initialize")
    assert _count(session_factory) == 0


def test_file_remote_initialized(
    http: TestClient,
    admin: dict[str, str],
    git_server: GitServer,
    project_id: str,
    repo_name: str,
) -> None:
    bare = git_server.create_repo(repo_name, branches=[])
    body = {
        "provider": "git",
        "repositoryName": repo_name,
        "providerParameters": {"url": bare.as_uri()},
    }
    resp = http.post(
        f"/v1/projects/{project_id}/repositories?initialize=true",
        json=body,
        headers={**admin, TOKEN: "unused"},
    )
    assert resp.status_code == 201, resp.text
    assert git("ls-tree", "--name-only", "refs/heads/main", cwd=bare).split() == [
        "README.md",
        "stead.yaml",
    ]


def test_a_clone_checks_out_the_scaffold_on_the_branch_head_names(
    http: TestClient,
    admin: dict[str, str],
    git_server: GitServer,
    repo_name: str,
    tmp_path: Path,
) -> None:
    """A repository made with ``git init --bare`` has HEAD on an unborn branch (``master`` by
    default, ``trunk`` here); the first commit goes there, so a plain ``git clone`` checks it
    out, over HTTP and from a path on the server's disk."""
    arranged = arrange(http, admin, "redshift")
    assert http.post(arranged.base, json=arranged.body, headers=admin).status_code == 201
    bare = git_server.root / f"{repo_name}.git"
    git("init", "--bare", "--quiet", "--initial-branch=trunk", str(bare))
    git("config", "http.receivepack", "true", cwd=bare)
    git_server.add_token("tok-head", read=[repo_name])
    url = f"/v1/projects/{arranged.project_id}/repositories"
    for remote in (f"{git_server.url}/{repo_name}.git", bare.as_uri()):
        body = {
            "provider": "git",
            "repositoryName": repo_name,
            "providerParameters": {"url": remote},
        }
        resp = http.post(f"{url}?initialize=true", json=body, headers={**admin, TOKEN: "tok-head"})
        assert resp.status_code == 201, resp.text
        assert resp.json()["defaultBranch"] == "trunk"
        clone = tmp_path / f"clone-{len(list(tmp_path.iterdir()))}"
        git("clone", "--quiet", bare.as_uri(), str(clone))
        assert git("branch", "--show-current", cwd=clone).strip() == "trunk"
        assert (clone / "README.md").is_file() and (clone / "stead.yaml").is_file()
        assert http.delete(url, headers={**admin, TOKEN: "tok-head"}).status_code == 204
        git("update-ref", "-d", "refs/heads/trunk", cwd=bare)  # empty again for the next remote


def test_initialize_writes_only_the_environments_the_caller_may_read(
    http: TestClient,
    admin: dict[str, str],
    git_server: GitServer,
    repo_name: str,
    tmp_path: Path,
    session_factory: sessionmaker[Session],
) -> None:
    """``?initialize=true`` writes into the caller's repository only the environments the caller
    may read: one hidden from it (``noAccess``) is left out, settings and all."""
    arranged = arrange(http, admin, "redshift")
    assert http.post(arranged.base, json=arranged.body, headers=admin).status_code == 201
    hidden = {
        **arranged.body,
        "name": "secret tier",
        "displayName": "Hidden",
        "description": "hidden-marker",
    }
    hidden["connectionOverrides"] = [
        {
            **arranged.body["connectionOverrides"][0],
            "connectionProperties": {
                **arranged.body["connectionOverrides"][0]["connectionProperties"],
                "username": {"value": "hidden-user-marker"},
            },
        }
    ]
    assert http.post(arranged.base, json=hidden, headers=admin).status_code == 201
    user_id, email = new_user(
        session_factory, project_id=arranged.project_id, project_role="CONTRIBUTOR"
    )
    resp = http.put(
        f"{arranged.base}/secret tier/access/{user_id}",
        json={"accessLevel": "noAccess"},
        headers=admin,
    )
    assert resp.status_code == 200, resp.text
    contributor = login(http, email)
    git_server.create_repo(repo_name, branches=[])
    git_server.add_token("tok-hidden", read=[repo_name])
    remote = f"{git_server.url}/{repo_name}.git"
    url = f"/v1/projects/{arranged.project_id}/repositories?initialize=true"
    body = {"provider": "git", "repositoryName": repo_name, "providerParameters": {"url": remote}}
    resp = http.post(url, json=body, headers={**contributor, TOKEN: "tok-hidden"})
    assert resp.status_code == 201, resp.text

    files = _tree(_clone(git_server, repo_name, "tok-hidden", tmp_path / "clone"))
    assert sorted(files) == ["README.md", "environments/prod/README.md", "stead.yaml"]
    everything = b"".join(files.values())
    assert b"hidden-user-marker" not in everything and b"hidden-marker" not in everything
    assert b"secret tier" not in everything
    (described,) = parse(yaml.safe_load(files["stead.yaml"]), {}).projects
    assert [e.name for e in described.environments] == ["prod"]
