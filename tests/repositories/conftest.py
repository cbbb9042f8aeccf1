"""Fixtures for the repository tests: the GitHub fake and the git HTTP server (real HTTP on
127.0.0.1), settings pointing the app at the fake, a project, and captured logs."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stead.settings import Settings
from tests.support.git_server import GitServer, git_server_session  # noqa: F401 - fixture
from tests.support.github_fake import GitHubFake, github_fake_server  # noqa: F401 - fixture
from tests.support.outbound import LOCAL

UPSTREAM_TIMEOUT = 2.0


@pytest.fixture
def github(github_fake_server: GitHubFake) -> GitHubFake:  # noqa: F811 - fixture use
    """The GitHub fake, emptied for this test."""
    github_fake_server.reset()
    return github_fake_server


@pytest.fixture
def git_server(git_server_session: GitServer) -> GitServer:  # noqa: F811 - fixture use
    """The git HTTP server, its tokens forgotten for this test."""
    git_server_session.reset()
    return git_server_session


@pytest.fixture
def settings(db_url: str, tmp_path: Path, github: GitHubFake) -> Settings:
    """Settings whose GitHub API is the fake, with a short upstream timeout."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        github_api_url=github.url,
        upstream_timeout_seconds=UPSTREAM_TIMEOUT,
        **LOCAL,
    )


@pytest.fixture
def project_id(http: TestClient, admin: dict[str, str]) -> str:
    """A fresh project's id."""
    resp = http.post(
        "/v1/projects",
        json={
            "name": f"p-{uuid.uuid4().hex[:8]}",
            "warehouse": "SNOWFLAKE",
            "agentDeploymentType": "HYBRID",
        },
        headers=admin,
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["projectId"])


@pytest.fixture
def repo_name() -> str:
    """A repository name unique in the session (the servers are shared by all tests)."""
    return f"pipelines-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def logs(http: TestClient, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record at DEBUG and above. The app's logging setup replaces the root handlers,
    so caplog's handler is put back once the app exists."""
    root = logging.getLogger()
    if caplog.handler not in root.handlers:
        root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    return caplog
