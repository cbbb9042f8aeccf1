"""Snowflake ``account`` normalisation over HTTP (docs/warehouses.md), on create and on PATCH.

Every accepted form is stored and returned in its canonical form; every refused one is a 400
naming ``...account.value`` whose message lists the accepted forms, and changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.support.factories import assert_problem
from tests.support.keys import pkcs8, rsa_key
from tests.warehouses.provisioned import PROPS, count_environments, properties, provision

FIELD = f"{PROPS}.account.value"

_BASES = [
    # (form, as typed, canonical)
    ("orgname-accountname", "AcmeOrg-Growth_EU", "acmeorg-growth_eu"),
    ("orgname.accountname", "acmeorg.GROWTH_eu", "acmeorg-growth_eu"),
    ("locator", "XY12345", "xy12345"),
    ("locator.region", "xy12345.EU-West-1", "xy12345.eu-west-1"),
    ("locator.region.cloud", "Xy12345.east-us-2.Azure", "xy12345.east-us-2.azure"),
]
_DECORATIONS = [
    ("bare", "{}"),
    ("https", "https://{}"),
    ("slash", "{}/"),
    ("domain", "{}.snowflakecomputing.com"),
    ("url", "HTTPS://{}.SnowflakeComputing.COM/"),
]
ACCEPTED = [
    pytest.param(decoration.format(typed), canonical, id=f"{form}-{name}")
    for form, typed, canonical in _BASES
    for name, decoration in _DECORATIONS
] + [
    pytest.param("acmeorg-growth-eu", "acmeorg-growth_eu", id="dash-for-underscore"),
    pytest.param("acmeorg.growth", "acmeorg-growth", id="sql-form-plain"),
    pytest.param(
        "https://AcmeOrg-Growth.privatelink.snowflakecomputing.com/",
        "acmeorg-growth.privatelink",
        id="privatelink-account-url",
    ),
    pytest.param(
        "xy12345.us-east-1.privatelink", "xy12345.us-east-1.privatelink", id="privatelink-locator"
    ),
    # the address Snowsight shows in the browser
    pytest.param(
        "https://app.snowflake.com/AcmeOrg/Growth_EU/#/homepage",
        "acmeorg-growth_eu",
        id="snowsight",
    ),
    pytest.param("app.snowflake.com/acmeorg/growth", "acmeorg-growth", id="snowsight-no-scheme"),
    pytest.param(
        "https://app.snowflake.com/us-east-2.aws/xy12345/worksheets",
        "xy12345.us-east-2.aws",
        id="snowsight-locator",
    ),
    pytest.param("https://app.snowflake.com/us-west-2/XY12345/", "xy12345", id="snowsight-oregon"),
]

REFUSED = [
    "",
    "acmeorg",
    "acmeorg-",
    "-growth",
    "acmeorg-growth_",
    "acme_org-growth",
    "acme org-growth",
    " acmeorg-growth",
    "acmeorg-growth\n",
    "acmeorg-grówth",
    "http://acmeorg-growth.snowflakecomputing.com",
    "HTTP://xy12345",
    "ftp://acmeorg-growth",
    "https://",
    "https://https://acmeorg-growth",
    "acmeorg-growth//",
    "acmeorg-growth:443",
    "https://acmeorg-growth.snowflakecomputing.com/console",
    "acmeorg-growth.snowflakecomputing.com.evil.example",
    "acmeorg-growth.privatelink.example.com",
    "https://app.snowflake.com/acmeorg/growth team/",
    "acmeorg-growth.us-east-1",
    "acmeorg.growth.us-east-1",
    "xy12345.us-east-1.oracle",
    "xy12345.us-east-1.aws.extra",
    "12345.us-east-1",
    ".privatelink",
]
FORMS_NAMED = (
    "orgname-accountname",
    "orgname.accountname",
    "locator",
    "locator.region",
    "locator.region.cloud",
    "https://",
    ".snowflakecomputing.com",
)


def _with_account(body: dict[str, Any], account: str) -> dict[str, Any]:
    override = dict(body["connectionOverrides"][0])
    override["connectionProperties"] = {
        **override["connectionProperties"],
        "account": {"value": account},
    }
    return {**body, "connectionOverrides": [override]}


def _patch(account: str, body: dict[str, Any]) -> dict[str, Any]:
    """A PATCH to ``account``: a stored private key goes only to its environment's account, so
    moving to another one gives the key itself."""
    (override,) = _with_account(body, account)["connectionOverrides"]
    key = {"value": pkcs8(rsa_key(number=1))}
    override["connectionProperties"] = {**override["connectionProperties"], "privateKey": key}
    return {"connectionOverrides": [override]}


@pytest.mark.parametrize(("given", "canonical"), ACCEPTED)
def test_accepted_form_is_stored_canonical(
    http: TestClient, admin: dict[str, str], given: str, canonical: str
) -> None:
    env = provision(http, admin, "snowflake")
    url = f"{env.base}/prod"
    resp = http.post(env.base, json=_with_account(env.body, given), headers=admin)
    assert resp.status_code == 201, resp.text
    assert properties(resp)["account"] == {"value": canonical}
    assert properties(http.get(url, headers=admin))["account"] == {"value": canonical}

    # PATCH: away to another account, then back with the form as typed
    resp = http.patch(url, json=_patch("zz99999", env.body), headers=admin)
    assert resp.status_code == 200, resp.text
    assert properties(resp)["account"] == {"value": "zz99999"}
    resp = http.patch(url, json=_patch(given, env.body), headers=admin)
    assert resp.status_code == 200, resp.text
    assert properties(resp)["account"] == {"value": canonical}
    assert properties(http.get(url, headers=admin))["account"] == {"value": canonical}

    # the canonical form is a fixed point, and sending back a GET changes nothing
    got = http.get(url, headers=admin).json()
    resp = http.patch(url, json={"connectionOverrides": got["connectionOverrides"]}, headers=admin)
    assert resp.status_code == 200, resp.text
    assert resp.json()["connectionOverrides"] == got["connectionOverrides"]


@pytest.mark.parametrize("given", REFUSED)
def test_refused_form_changes_nothing(
    http: TestClient,
    admin: dict[str, str],
    session_factory: sessionmaker[Session],
    given: str,
) -> None:
    env = provision(http, admin, "snowflake")
    resp = http.post(env.base, json=_with_account(env.body, given), headers=admin)
    problem = assert_problem(resp, 400, FIELD)
    message = next(v for v in problem["violations"] if v.startswith(f"{FIELD}:"))
    if given:  # an empty value is "must not be empty", as for every property
        assert all(form in message for form in FORMS_NAMED), message
    assert count_environments(session_factory) == 0

    created = http.post(env.base, json=env.body, headers=admin)
    assert created.status_code == 201, created.text
    resp = http.patch(f"{env.base}/prod", json=_patch(given, env.body), headers=admin)
    assert_problem(resp, 400, FIELD)
    assert http.get(f"{env.base}/prod", headers=admin).json() == created.json()


def test_too_long_identifier_is_refused(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    env = provision(http, admin, "snowflake")
    longest = "a" * 31 + "-" + "b" * 31  # 63 characters: Snowflake's limit
    resp = http.post(env.base, json=_with_account(env.body, longest), headers=admin)
    assert resp.status_code == 201, resp.text
    assert http.delete(f"{env.base}/prod", headers=admin).status_code == 204
    resp = http.post(env.base, json=_with_account(env.body, longest + "b"), headers=admin)
    problem = assert_problem(resp, 400, FIELD)
    assert "63" in problem["violations"][0]
    assert count_environments(session_factory) == 0


@pytest.mark.parametrize("given", ["https://app.snowflake.com/", "app.snowflake.com/acmeorg#/x"])
def test_a_snowsight_address_without_its_account_says_so(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session], given: str
) -> None:
    env = provision(http, admin, "snowflake")
    resp = http.post(env.base, json=_with_account(env.body, given), headers=admin)
    problem = assert_problem(resp, 400, FIELD)
    message = next(v for v in problem["violations"] if v.startswith(f"{FIELD}:"))
    assert "Snowsight address without its account" in message
    assert "https://app.snowflake.com/ORGANIZATION/ACCOUNT/" in message
    assert count_environments(session_factory) == 0
