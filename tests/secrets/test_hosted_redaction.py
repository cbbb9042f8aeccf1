"""Log redaction of known secret values: a value Stead has stored or read is masked
in every later log line of the process, wherever it appears in the line."""

from __future__ import annotations

import json
import logging

import pytest
import structlog
from fastapi.testclient import TestClient

from stead.logs import (
    KNOWN_SECRET_MAX,
    KNOWN_SECRET_MIN,
    REDACTED,
    _KnownSecrets,
    configure_logging,
    redact_log_text,
    redact_text,
    remember_secret,
)
from tests.support.factories import example

VALUE = "known-value-5c1e9a"


def _lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_stored_values_are_masked_in_log_lines(
    http: TestClient, admin: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    resp = http.post("/v1/projects", json=example("01-create-project-redshift"), headers=admin)
    body = {"name": "db", "type": "PASSWORD", "value": VALUE}
    url = f"/v1/projects/{resp.json()['projectId']}/secrets"
    assert http.post(url, json=body, headers=admin).status_code == 201
    configure_logging()  # its handler writes to the stderr captured now
    capfd.readouterr()

    logging.getLogger("stead.test").warning("driver said: login failed for %s!", VALUE)
    structlog.get_logger("stead.test").warning(
        "upstream answer", body={"nested": [f"x{VALUE}y"]}, note=VALUE.upper()
    )
    try:
        raise RuntimeError(f"driver error: password {VALUE} rejected")
    except RuntimeError:
        logging.getLogger("stead.test").exception("connection test failed")
    err = capfd.readouterr().err
    assert VALUE not in err
    first, second, third = _lines(err)[-3:]
    assert f"RuntimeError: driver error: password {REDACTED} rejected" in str(third["exception"])
    assert first["event"] == f"driver said: login failed for {REDACTED}!"
    assert second["body"] == {"nested": [f"x{REDACTED}y"]}
    assert second["note"] == VALUE.upper()  # only the value itself is known


def test_short_values_are_not_remembered() -> None:
    short = "abc1234"
    assert len(short) < KNOWN_SECRET_MIN
    remember_secret(short)
    assert redact_log_text(f"id {short}") == f"id {short}"
    remember_secret("abc12345-longer")
    assert redact_log_text("abc12345-longer and abc12345") == f"{REDACTED} and abc12345"


def test_text_for_a_caller_is_masked_with_its_own_secrets_only() -> None:
    remember_secret("someone-elses-secret")
    text = "user someone-elses-secret, password pw"
    assert redact_text(text, ["pw"]) == f"user someone-elses-secret, password {REDACTED}"
    assert redact_log_text(text) == f"user {REDACTED}, password pw"


def test_the_longest_value_at_a_place_is_masked_whole_and_the_oldest_is_forgotten() -> None:
    known = _KnownSecrets()
    for value in ("key-0001", "key-0001-and-more", "other-secret-value", "key-0001-and"):
        known.add(value)
    text = "a key-0001-and-more, key-0001-and. key-0001x other-secret-value key-000"
    assert known.mask(text) == f"a {REDACTED}, {REDACTED}. {REDACTED}x {REDACTED} key-000"
    # Values that overlap: the one that starts first is masked, whole.
    known.add("abcdefgh-1234")
    known.add("1234-ijklmnop")
    assert known.mask("abcdefgh-1234-ijklmnop") == f"{REDACTED}-ijklmnop"

    fresh = _KnownSecrets()
    values = [f"secret-{n:05d}" for n in range(KNOWN_SECRET_MAX + 1)]
    for value in values:
        fresh.add(value)
    assert fresh.mask(values[0]) == values[0]  # the oldest went when the last came
    assert fresh.mask(f"{values[1]} {values[-1]}") == f"{REDACTED} {REDACTED}"
    fresh.add(values[1])  # remembered again: now the most recent
    fresh.add("secret-new")
    assert fresh.mask(values[1]) == REDACTED
    assert fresh.mask(values[2]) == values[2]
