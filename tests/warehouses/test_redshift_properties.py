"""Redshift ``url``, ``port``, ``useSsl`` and ``defaultStorageLocation`` checks over HTTP
(docs/warehouses.md), on create and on PATCH: accepted values are stored canonical, refused
ones are a 400 naming the property and change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from stead.warehouses import redshift
from tests.support.factories import assert_problem
from tests.warehouses.provisioned import PROPS, count_environments, properties, provision

ACCEPTED = [
    ("url", "finance.cq1example.eu-west-1.redshift.amazonaws.com", None),
    ("url", "wg.123456789012.us-east-1.redshift-serverless.amazonaws.com", None),
    ("url", "localhost", None),
    ("url", "10.0.0.5", None),
    ("url", "Finance-1.Example.COM", None),
    ("port", "1", None),
    ("port", "65535", None),
    ("port", "05439", "5439"),
    ("useSsl", "TRUE", "true"),
    ("useSsl", "False", "false"),
    ("defaultStorageLocation", "finance-etl-staging", None),
    ("defaultStorageLocation", "finance.etl.staging.2026", None),
    ("defaultStorageLocation", "abc", None),
    ("defaultStorageLocation", "a" * 63, None),
]

REFUSED = [
    # url: a host name, no scheme, port, path or IPv6 address
    ("url", "https://finance.example.com", "scheme"),
    ("url", "jdbc:redshift://finance.example.com:5439/dev", "scheme"),
    ("url", "finance.example.com:5439", "port"),
    ("url", "finance.example.com/dev", "host name"),
    ("url", "2001:db8::1", "IPv6"),
    ("url", "[2001:db8::1]", "IPv6"),
    ("url", "finance_1.example.com", "host name"),
    ("url", "-finance.example.com", "host name"),
    ("url", "finance..example.com", "host name"),
    ("url", " finance.example.com", "host name"),
    ("url", "fínance.example.com", "host name"),
    ("url", "a" * 64 + ".example.com", "host name"),
    ("url", ("a" * 63 + ".") * 4 + "com", "host name"),
    # port: 1-65535 in ASCII digits
    ("port", "0", "1 to 65535"),
    ("port", "00000", "1 to 65535"),
    ("port", "65536", "1 to 65535"),
    ("port", "-1", "1 to 65535"),
    ("port", "+5439", "1 to 65535"),
    ("port", "5439.0", "1 to 65535"),
    ("port", " 5439", "1 to 65535"),
    ("port", "٥٤٣٩", "1 to 65535"),
    ("port", "9" * 5000, "1 to 65535"),
    # useSsl: true or false
    ("useSsl", "yes", "true or false"),
    ("useSsl", "1", "true or false"),
    ("useSsl", "true ", "true or false"),
    # defaultStorageLocation: an S3 general purpose bucket name
    ("defaultStorageLocation", "s3://finance-etl-staging", "without s3://"),
    ("defaultStorageLocation", "S3://finance-etl-staging", "without s3://"),
    ("defaultStorageLocation", "finance-etl-staging/unload", "without a path"),
    ("defaultStorageLocation", "ab", "3-63 characters"),
    ("defaultStorageLocation", "a" * 64, "3-63 characters"),
    ("defaultStorageLocation", "Finance-ETL", "lower-case"),
    ("defaultStorageLocation", "finance_etl", "lower-case"),
    ("defaultStorageLocation", "-finance", "starting and ending"),
    ("defaultStorageLocation", "finance-", "starting and ending"),
    ("defaultStorageLocation", "finance..etl", "no '..'"),
    ("defaultStorageLocation", "192.168.5.4", "IP address"),
    ("defaultStorageLocation", "xn--finance", "prefix xn--"),
    ("defaultStorageLocation", "sthree-finance", "prefix sthree-"),
    ("defaultStorageLocation", "amzn-s3-demo-finance", "prefix amzn-s3-demo-"),
    ("defaultStorageLocation", "finance-s3alias", "suffix -s3alias"),
    ("defaultStorageLocation", "finance--ol-s3", "suffix --ol-s3"),
    ("defaultStorageLocation", "finance.mrap", "suffix .mrap"),
    ("defaultStorageLocation", "finance--x-s3", "suffix --x-s3"),
    ("defaultStorageLocation", "finance--table-s3", "suffix --table-s3"),
]


def _body_with(env_body: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    override = dict(env_body["connectionOverrides"][0])
    override["connectionProperties"] = {
        **override["connectionProperties"],
        key: {"value": value},
    }
    return {**env_body, "connectionOverrides": [override]}


def _moved(env_body: dict[str, Any], key: str) -> dict[str, Any]:
    """``env_body`` with the password given inline when ``key`` says where the cluster is."""
    if key not in ("url", "port"):
        return env_body
    override = dict(env_body["connectionOverrides"][0])
    override["connectionProperties"] = {
        **override["connectionProperties"],
        "password": {"value": "password-for-this-host"},
    }
    return {**env_body, "connectionOverrides": [override]}


@pytest.mark.parametrize(
    ("key", "given", "stored"), ACCEPTED, ids=[f"{key}={given}" for key, given, _ in ACCEPTED]
)
def test_accepted_values(
    http: TestClient, admin: dict[str, str], key: str, given: str, stored: str | None
) -> None:
    env = provision(http, admin, "redshift")
    expected = {"value": stored or given}
    resp = http.post(env.base, json=_body_with(env.body, key, given), headers=admin)
    assert resp.status_code == 201, resp.text
    assert properties(resp)[key] == expected
    # PATCH from the example's value back to the given one (moving the host gives the password
    # itself: a stored one goes only to its environment's host)
    url = f"{env.base}/prod"
    patch = {"connectionOverrides": _moved(env.body, key)["connectionOverrides"]}
    assert http.patch(url, json=patch, headers=admin).status_code == 200
    patch = {
        "connectionOverrides": _moved(_body_with(env.body, key, given), key)["connectionOverrides"]
    }
    resp = http.patch(url, json=patch, headers=admin)
    assert resp.status_code == 200, resp.text
    assert properties(resp)[key] == expected
    assert properties(http.get(url, headers=admin))[key] == expected


def test_defaults_and_optional_bucket(http: TestClient, admin: dict[str, str]) -> None:
    env = provision(http, admin, "redshift")
    body = env.with_properties(useSsl=None, defaultSchema=None, defaultStorageLocation=None)
    resp = http.post(env.base, json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    stored = properties(resp)
    assert stored["useSsl"] == {"value": "true"}
    assert stored["defaultSchema"] == {"value": "public"}
    assert "defaultStorageLocation" not in stored


@pytest.mark.parametrize(
    ("key", "given", "message"),
    [pytest.param(*case, id=f"{case[0]}={case[1][:24]}") for case in REFUSED],
)
def test_refused_values_change_nothing(
    http: TestClient,
    admin: dict[str, str],
    session_factory: sessionmaker[Session],
    key: str,
    given: str,
    message: str,
) -> None:
    env = provision(http, admin, "redshift")
    field = f"{PROPS}.{key}.value"
    resp = http.post(env.base, json=_body_with(env.body, key, given), headers=admin)
    problem = assert_problem(resp, 400, field)
    violation = next(v for v in problem["violations"] if v.startswith(f"{field}:"))
    assert message in violation, violation
    assert count_environments(session_factory) == 0

    created = http.post(env.base, json=env.body, headers=admin)
    assert created.status_code == 201, created.text
    patch = {"connectionOverrides": _body_with(env.body, key, given)["connectionOverrides"]}
    resp = http.patch(f"{env.base}/prod", json=patch, headers=admin)
    assert_problem(resp, 400, field)
    assert http.get(f"{env.base}/prod", headers=admin).json() == created.json()


def test_port_is_checked_without_converting_a_huge_number() -> None:
    with pytest.raises(ValueError, match="1 to 65535"):
        redshift.normalise_port("1" * 100_000)
    assert redshift.normalise_port("0" * 100_000 + "5439") == "5439"
