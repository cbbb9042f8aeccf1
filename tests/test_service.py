"""Service endpoints, the rate limit, request ids and the OpenAPI document."""

from __future__ import annotations

import stat
from pathlib import Path

from fastapi.testclient import TestClient

from stead.app import create_app
from stead.settings import Settings
from tests.support.factories import assert_problem, auth


def test_health_ready_metrics_openapi(http: TestClient, admin: dict[str, str]) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json() == {"status": "ok"}
    http.get("/v1/projects", headers=admin)
    metrics = http.get("/metrics").text
    assert (
        'stead_http_requests_total{method="GET",route="/v1/projects",status="200"} 1.0' in metrics
    )
    spec = http.get("/openapi.json").json()
    assert "/v1/projects" in spec["paths"] and "/oauth/dpc/token" in spec["paths"]
    assert not any(p.startswith("/dpc/") for p in spec["paths"])
    resp = http.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["x-request-id"] == "abc-123"


def test_readyz_fails_when_database_is_unreachable(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:9/x")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert_problem(client.get("/readyz"), 503)


def test_rate_limit_per_client(settings: Settings) -> None:
    settings = settings.model_copy(update={"rate_limit_per_minute": 3})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        factory = client.app.state.sessionmaker  # type: ignore[attr-defined]
        limited = auth(client, factory, "SUPER_ADMIN")
        other = auth(client, factory, "SUPER_ADMIN")
        for _ in range(3):
            assert client.get("/v1/projects", headers=limited).status_code == 200
        resp = client.get("/v1/projects", headers=limited)
        assert_problem(resp, 429)
        assert 1 <= int(resp.headers["retry-after"]) <= 60
        assert client.get("/v1/projects", headers=other).status_code == 200


def test_a_new_data_directory_is_private(tmp_path: Path) -> None:
    from stead.identity.keys import load_signing_key
    from stead.migrations import upgrade
    from stead.secrets.store import load_keyring

    created = []
    for name, make in (
        ("db", lambda s: upgrade(s.effective_database_url)),
        ("signing", load_signing_key),
        ("master", load_keyring),
    ):
        settings = Settings(data_dir=tmp_path / name / "stead", database_url="")
        make(settings)
        created.append(settings.data_dir)
    assert [stat.S_IMODE(d.stat().st_mode) for d in created] == [0o700] * 3
    keys = [created[1] / "signing.key", created[2] / "master.key"]
    assert [stat.S_IMODE(k.stat().st_mode) for k in keys] == [0o600] * 2
