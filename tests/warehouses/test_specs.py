"""Warehouse property specs and value normalisation."""

from __future__ import annotations

import pytest

from stead.warehouses import check_properties, redshift, snowflake, spec_for
from stead.warehouses.snowflake import normalise_account

PATH = "connectionOverrides[0].connectionProperties"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # orgname-accountname (preferred), any case, with or without scheme, domain and '/'
        ("acmeorg-growth", "acmeorg-growth"),
        ("AcmeOrg-Growth", "acmeorg-growth"),
        ("acmeorg-growth_eu", "acmeorg-growth_eu"),
        ("acmeorg-growth-eu", "acmeorg-growth_eu"),  # the URL spelling of an underscore
        ("https://acmeorg-growth.snowflakecomputing.com", "acmeorg-growth"),
        ("HTTPS://ACMEORG-GROWTH.SNOWFLAKECOMPUTING.COM/", "acmeorg-growth"),
        ("acmeorg-growth/", "acmeorg-growth"),
        # orgname.accountname (the SQL form)
        ("acmeorg.growth", "acmeorg-growth"),
        ("acmeorg.growth_eu.snowflakecomputing.com", "acmeorg-growth_eu"),
        # locator, locator.region, locator.region.cloud
        ("XY12345", "xy12345"),
        ("xy12345.snowflakecomputing.com", "xy12345"),
        ("xy12345.us-east-1", "xy12345.us-east-1"),
        ("https://xy12345.eu-west-2.aws.snowflakecomputing.com/", "xy12345.eu-west-2.aws"),
        ("xy12345.east-us-2.AZURE", "xy12345.east-us-2.azure"),
        ("xy12345.us-central1.gcp", "xy12345.us-central1.gcp"),
        # private connectivity keeps its segment
        ("AcmeOrg-Growth.privatelink.snowflakecomputing.com", "acmeorg-growth.privatelink"),
        (
            "https://xy12345.us-east-1.privatelink.snowflakecomputing.com/",
            "xy12345.us-east-1.privatelink",
        ),
    ],
)
def test_account_forms(given: str, expected: str) -> None:
    assert normalise_account(given) == expected
    assert normalise_account(expected) == expected  # canonical is a fixed point


@pytest.mark.parametrize(
    "given",
    [
        "",
        "acmeorg",
        "acmeorg-",
        "-growth",
        "acmeorg--",
        "acmeorg-growth_",
        " acmeorg-growth",
        "acmeorg-growth ",
        "http://acmeorg-growth",
        "https://",
        "acme_org-growth",
        "acme org-growth",
        "acmeorg-growth.us-east-1",
        "xy12345.us-east-1.oracle",
        "xy12345.us-east-1.aws.extra",
        "xy-12345.us-east-1",
        "12345.us-east-1",
        "acmeorg-grówth",
        "acmeorg-growth.snowflakecomputing.com.evil.example",
        "acmeorg-growth//",
        "a" * 60 + "-" + "b" * 10,
    ],
)
def test_invalid_accounts_list_the_accepted_forms(given: str) -> None:
    with pytest.raises(ValueError) as info:
        normalise_account(given)
    message = str(info.value)
    assert "63" in message or all(
        form in message
        for form in (
            "orgname-accountname",
            "orgname.accountname",
            "locator",
            "locator.region",
            "locator.region.cloud",
            "https://",
            ".snowflakecomputing.com",
        )
    )


@pytest.mark.parametrize(
    ("given", "expected"), [("5439", "5439"), ("1", "1"), ("65535", "65535"), ("05439", "5439")]
)
def test_redshift_port(given: str, expected: str) -> None:
    assert redshift.normalise_port(given) == expected


@pytest.mark.parametrize("given", ["0", "65536", "-1", "+5439", "5439.0", "54 39", "٥٤٣٩", "x"])
def test_redshift_port_refused(given: str) -> None:
    with pytest.raises(ValueError, match="1 to 65535"):
        redshift.normalise_port(given)


@pytest.mark.parametrize(
    "given",
    [
        "finance.cq1example.eu-west-1.redshift.amazonaws.com",
        "localhost",
        "10.0.0.5",
        "Finance-1.Example.COM",
    ],
)
def test_redshift_host(given: str) -> None:
    assert redshift.normalise_host(given) == given


@pytest.mark.parametrize(
    "given",
    [
        "https://finance.example.com",
        "jdbc:redshift://h:5439/db",
        "finance.example.com:5439",
        "finance.example.com/db",
        "-finance.example.com",
        "finance..example.com",
        "finance_1.example.com",
        "a" * 64 + ".example.com",
        "finance.example.com.",
        "fínance.example.com",
    ],
)
def test_redshift_host_refused(given: str) -> None:
    with pytest.raises(ValueError, match="host name"):
        redshift.normalise_host(given)


def test_redshift_bool_and_bucket() -> None:
    assert redshift.normalise_bool("TRUE") == "true"
    assert redshift.normalise_bool("False") == "false"
    with pytest.raises(ValueError, match="true or false"):
        redshift.normalise_bool("1")
    assert redshift.normalise_bucket("finance-etl-staging") == "finance-etl-staging"
    for bad in ["ab", "Finance", "s3://finance", "finance..staging", "-finance", "a" * 64]:
        with pytest.raises(ValueError, match="S3 bucket"):
            redshift.normalise_bucket(bad)


def test_check_properties_rules() -> None:
    spec = spec_for("REDSHIFT")
    canary = "canary-inline-secret"
    given = {
        "url": {"value": "h.example.com"},
        "port": {"value": "0"},
        "password": {"value": canary},
        "pasword": {"value": "x"},
        "username": {"value": ""},
    }
    properties, violations = check_properties(spec, given, path=PATH)
    assert sorted(v.split(":")[0] for v in violations) == sorted(
        [
            f"{PATH}.port.value",
            f"{PATH}.pasword",
            f"{PATH}.username.value",
            f"{PATH}.defaultDatabase",
        ]
    )
    assert not any(canary in v for v in violations)
    # a sensitive inline value passes through; the environment stores it as a hosted secret
    assert properties["password"] == {"value": canary}
    assert properties["defaultSchema"] == {"value": "public"}
    assert properties["useSsl"] == {"value": "true"}


def test_check_properties_keeps_references_and_given_optionals() -> None:
    spec = spec_for("SNOWFLAKE")
    reference = {"secretName": "key", "secretKey": None}
    properties, violations = check_properties(
        spec,
        {
            "account": {"value": "ACME.growth"},
            "username": {"secretName": "user", "secretKey": "u"},
            "privateKey": reference,
            "passphrase": reference,
        },
        path=PATH,
    )
    assert violations == []
    assert properties == {
        "account": {"value": "acme-growth"},
        "username": {"secretName": "user", "secretKey": "u"},
        "privateKey": reference,
        "passphrase": reference,
    }


def test_specs_match_the_documented_properties() -> None:
    rs, sf = spec_for("REDSHIFT"), spec_for("SNOWFLAKE")
    assert (rs.auth_type, sf.auth_type) == ("PASSWORD", "KEY_PAIR")
    assert set(rs.required) == {"url", "port", "username", "password", "defaultDatabase"}
    assert set(rs.optional) == {"defaultSchema", "useSsl", "defaultStorageLocation"}
    assert rs.sensitive == {"password"}
    assert set(sf.required) == {"account", "username", "privateKey"}
    assert set(sf.optional) == {
        "passphrase",
        "defaultRole",
        "defaultWarehouse",
        "defaultDatabase",
        "defaultSchema",
    }
    assert sf.sensitive == {"privateKey", "passphrase"}
    assert snowflake.SPEC is sf and redshift.SPEC is rs
