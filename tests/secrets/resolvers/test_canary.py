"""A canary value resolved from every store, through success and error paths, appears in no
response (body or header), no log record at DEBUG, no audit row, and nowhere in the database
(the SQLite file and its WAL, or a PostgreSQL dump)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from stead.audit.models import AuditEvent
from stead.secrets.resolvers.base import SecretNotFound
from tests.secrets.resolvers.conftest import HOSTED, STORES, World, put_vault
from tests.support.postgres import PG_BIN


@pytest.fixture(autouse=True)
def _whole_stores(world: World) -> None:
    """The canaries are put anywhere in the stores: the project's scope is each whole store."""
    scopes = [{"store": store, "prefixes": [""]} for store in STORES if store != HOSTED]
    resp = world.http.put(
        f"/v1/projects/{world.project_id}/secret-scopes",
        json={"scopes": scopes},
        headers=world.admin,
    )
    assert resp.status_code == 200, resp.text


def _database_bytes(db_url: str) -> bytes:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return subprocess.run(
        [str(PG_BIN / "pg_dump"), "--data-only", plain], check=True, capture_output=True
    ).stdout


def test_canary_never_leaves_the_resolvers(
    world: World, canary: str, logs: pytest.LogCaptureFixture, db_url: str
) -> None:
    answers: list[Any] = []
    document = json.dumps({"password": canary, "user": "etl"})
    for store in STORES:
        plain = world.reference(store, world.put(store, canary))
        keyed = world.reference(store, world.put(store, document), key="password")
        wrong_key = world.reference(store, world.put(store, document), key="absent")
        answers += [world.check(plain), world.check(keyed), world.check(wrong_key)]
        assert [a.status_code for a in answers[-3:]] == [200, 200, 400]
        assert world.resolve(plain) == canary
        assert world.resolve(keyed) == canary
        with pytest.raises(SecretNotFound) as err:
            world.resolve(wrong_key)
        assert canary not in str(err.value) + repr(err.value.violations)
        if store != HOSTED:
            # the SDKs see the value; their own DEBUG logging must not write it
            assert world.resolve(plain) == canary

    # refused reads of secrets holding the canary
    outside = "elsewhere/canary"
    put_vault(world.vault, outside, canary)
    answers.append(world.check(world.reference("Vault", outside)))
    world.azure.state.secrets["locked"] = canary
    world.azure.state.forbidden.add("locked")
    answers.append(world.check(world.reference("Azure", "locked")))
    world.gcp.add_secret("locked", canary.encode(), denied=True)
    answers.append(world.check(world.reference("GCP", "locked")))
    assert [a.status_code for a in answers[-3:]] == [403, 403, 403]

    for answer in answers:
        assert canary not in answer.text
        assert canary not in repr(answer.headers.raw)
    assert logs.records, "no log record was captured"
    for record in logs.records:
        assert canary not in record.getMessage()
        assert canary not in repr(record.__dict__)
    with world.factory() as session:
        events = session.scalars(select(AuditEvent)).all()
        assert any(e.action == "secret_reference.checked" for e in events)
        for event in events:
            columns = {c.key: getattr(event, c.key) for c in event.__mapper__.column_attrs}
            assert canary not in repr(columns)
    assert canary.encode() not in _database_bytes(db_url)
