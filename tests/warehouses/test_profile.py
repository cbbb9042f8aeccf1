"""``GET .../environments/{name}/profile?format=dbt`` and ``stead env profile``: the environment
as a dbt profiles.yml target, every secret an ``env_var()`` reference, never a value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import jinja2
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stead.cli.main import app as cli
from stead.settings import Settings
from stead.warehouses.dbt import env_var_name
from tests.support.factories import assert_problem, member_auth
from tests.support.keys import pkcs8_encrypted, rsa_key
from tests.support.served import serve_here
from tests.warehouses.provisioned import Provisioned, provision

CANARY = "canary-Pa55phrase-4b1d9e"
PASSWORD_CANARY = "canary-Pa55w0rd-93c0aa"


def _env_var(name: str, *, number: bool = False) -> str:
    return "{{ env_var('" + name + "')" + (" | as_number" if number else "") + " }}"


def _create(http: TestClient, headers: dict[str, str], env: Provisioned, body: Any) -> None:
    resp = http.post(env.base, json=body, headers=headers)
    assert resp.status_code == 201, resp.text


def _profile(http: TestClient, headers: dict[str, str], env: Provisioned, name: str) -> Any:
    resp = http.get(f"{env.base}/{name}/profile", params={"format": "dbt"}, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/yaml"
    return resp


def _no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
        for line in secret.splitlines()[1:-1]:  # no line of a PEM body either
            assert line not in text


def test_snowflake_profile(http: TestClient, admin: dict[str, str]) -> None:
    env = provision(http, admin, "snowflake")
    pem = pkcs8_encrypted(rsa_key(), CANARY)
    body = env.with_properties(privateKey={"value": pem}, passphrase={"value": CANARY})
    _create(http, admin, env, body)
    resp = _profile(http, admin, env, "prod")
    _no_secret(resp.text, pem, CANARY)
    assert yaml.safe_load(resp.text) == {
        "growth-marketing": {
            "target": "prod",
            "outputs": {
                "prod": {
                    "type": "snowflake",
                    "account": "acmeorg-growth",
                    "user": "SVC_GROWTH",
                    "private_key": _env_var("STEAD_GROWTH_MARKETING__PROD__PRIVATE_KEY"),
                    "private_key_passphrase": _env_var(
                        "STEAD_GROWTH_MARKETING__PROD__PRIVATE_KEY_PASSPHRASE"
                    ),
                    "role": "TRANSFORMER",
                    "warehouse": "TRANSFORM_WH",
                    "database": "GROWTH",
                    "schema": "MARTS",
                    "threads": 4,
                }
            },
        }
    }
    # the header says where each variable's value lives: the hosted secrets Stead made
    secrets = {
        s["name"]
        for s in http.get(f"/v1/projects/{env.project_id}/secrets", headers=admin).json()["results"]
    }
    header = [line for line in resp.text.splitlines() if line.startswith("#")]
    for variable, secret in [
        ("STEAD_GROWTH_MARKETING__PROD__PRIVATE_KEY ", "prod-privateKey"),
        ("STEAD_GROWTH_MARKETING__PROD__PRIVATE_KEY_PASSPHRASE ", "prod-passphrase"),
    ]:
        assert secret in secrets
        assert any(variable in line and f'"{secret}"' in line for line in header), header


def test_redshift_profile(http: TestClient, admin: dict[str, str]) -> None:
    env = provision(http, admin, "redshift")
    _create(http, admin, env, env.body)  # password: a secret reference, key "password"
    body = env.with_properties(password={"value": PASSWORD_CANARY}, useSsl={"value": "FALSE"})
    _create(http, admin, env, {**body, "name": "dev"})
    prod = _profile(http, admin, env, "prod")
    dev = _profile(http, admin, env, "DEV")  # names are case-insensitive
    _no_secret(prod.text + dev.text, PASSWORD_CANARY)
    target = {
        "type": "redshift",
        "host": "finance.cq1example.eu-west-1.redshift.amazonaws.com",
        "port": 5439,
        "user": "etl_service",
        "password": _env_var("STEAD_FINANCE_ANALYTICS__PROD__PASSWORD"),
        "dbname": "analytics",
        "schema": "public",
        "sslmode": "require",
        "threads": 4,
    }
    assert yaml.safe_load(prod.text) == {
        "finance-analytics": {"target": "prod", "outputs": {"prod": target}}
    }
    dev_target = {
        **target,
        "password": _env_var("STEAD_FINANCE_ANALYTICS__DEV__PASSWORD"),
        "sslmode": "disable",
    }
    assert yaml.safe_load(dev.text) == {
        "finance-analytics": {"target": "dev", "outputs": {"dev": dev_target}}
    }
    assert any(
        "STEAD_FINANCE_ANALYTICS__PROD__PASSWORD" in line
        and '"finance-prod-redshift", key "password"' in line
        for line in prod.text.splitlines()
        if line.startswith("#")
    )


def test_secret_references_and_missing_fields_become_env_vars(
    http: TestClient, admin: dict[str, str]
) -> None:
    """A property held in a secret, and a field dbt requires that the environment lacks, are
    environment variables too; names outside ASCII fold into the variable names."""
    env = provision(http, admin, "snowflake")
    body = env.with_properties(
        username={"secretName": "growth-prod-private-key", "secretKey": "user"},
        defaultRole=None,
        defaultWarehouse=None,
        defaultDatabase=None,
        defaultSchema=None,
    )
    _create(http, admin, env, {**body, "name": "Prödüction eu-1"})
    resp = _profile(http, admin, env, "Prödüction eu-1")
    target = yaml.safe_load(resp.text)["growth-marketing"]["outputs"]["Prödüction eu-1"]
    prefix = "STEAD_GROWTH_MARKETING__PRODUCTION_EU_1_"
    assert target == {
        "type": "snowflake",
        "account": "acmeorg-growth",
        "user": _env_var(f"{prefix}_USER"),
        "private_key": _env_var(f"{prefix}_PRIVATE_KEY"),
        "warehouse": _env_var(f"{prefix}_WAREHOUSE"),
        "database": _env_var(f"{prefix}_DATABASE"),
        "schema": _env_var(f"{prefix}_SCHEMA"),
        "threads": 4,
    }
    header = "\n".join(line for line in resp.text.splitlines() if line.startswith("#"))
    assert f"{prefix}_DATABASE  database: the environment has no defaultDatabase" in header
    assert f'{prefix}_USER  user: username in secret "growth-prod-private-key", key "user"' in (
        header
    )


def test_redshift_port_from_a_secret_is_a_number(http: TestClient, admin: dict[str, str]) -> None:
    env = provision(http, admin, "redshift")
    body = env.with_properties(port={"secretName": "finance-prod-redshift", "secretKey": "port"})
    _create(http, admin, env, body)
    target = yaml.safe_load(_profile(http, admin, env, "prod").text)["finance-analytics"]
    assert target["outputs"]["prod"]["port"] == _env_var(
        "STEAD_FINANCE_ANALYTICS__PROD__PORT", number=True
    )


def test_values_dbt_would_render_or_yaml_would_retype_round_trip(
    http: TestClient, admin: dict[str, str]
) -> None:
    """dbt renders every profile value as Jinja, and YAML reads ``TRUE`` or ``5439`` as a
    boolean or number: plain values come back as the same text."""
    env = provision(http, admin, "snowflake")
    tricky = {
        "username": "svc_{{ env_var('AWS_SECRET_ACCESS_KEY') }}",
        "defaultRole": "TRUE",
        "defaultWarehouse": "5439",
        "defaultDatabase": "it's {% raw %}\\",
        "defaultSchema": "null",
    }
    body = env.with_properties(**{k: {"value": v} for k, v in tricky.items()})
    name = "prod\u2028line"
    project = http.patch(
        f"/v1/projects/{env.project_id}", json={"name": "growth\u2029marketing"}, headers=admin
    )
    assert project.status_code == 200, project.text
    _create(http, admin, env, {**body, "name": name})
    text = _profile(http, admin, env, name).text
    assert "\u2028" not in text and "\u2029" not in text
    profile = yaml.safe_load(text)
    target = profile["growth\u2029marketing"]["outputs"][name]
    assert profile["growth\u2029marketing"]["target"] == name
    # dbt renders each value as a Jinja template: it sees the text as it was given
    rendered = {
        key: jinja2.Environment().from_string(target[field]).render()
        for key, field in [
            ("username", "user"),
            ("defaultRole", "role"),
            ("defaultWarehouse", "warehouse"),
            ("defaultDatabase", "database"),
            ("defaultSchema", "schema"),
        ]
    }
    assert rendered == tricky


def test_format_is_required_and_checked(http: TestClient, admin: dict[str, str]) -> None:
    env = provision(http, admin, "redshift")
    _create(http, admin, env, env.body)
    url = f"{env.base}/prod/profile"
    for params in ({}, {"format": "dbt-core"}, {"format": ""}, {"format": "yaml"}):
        assert_problem(http.get(url, params=params, headers=admin), 400, "format")
    resp = http.get(url, params={"format": "DBT"}, headers=admin)  # enums: any case
    assert resp.status_code == 200, resp.text
    assert_problem(http.get(f"{env.base}/nope/profile?format=dbt", headers=admin), 404)


def test_readers_may_read_it(http: TestClient, admin: dict[str, str]) -> None:
    env = provision(http, admin, "redshift")
    _create(http, admin, env, env.body)
    viewer = member_auth(http, http.app.state.sessionmaker, env.project_id, "VIEWER")  # type: ignore[attr-defined]
    resp = http.get(f"{env.base}/prod/profile?format=dbt", headers=viewer)
    assert resp.status_code == 200, resp.text
    assert http.get(f"{env.base}/prod/profile?format=dbt").status_code == 401


@pytest.mark.parametrize(
    ("project", "environment", "expected"),
    [
        ("finance", "prod", "STEAD_FINANCE__PROD__PASSWORD"),
        ("finance-analytics", "prod-eu", "STEAD_FINANCE_ANALYTICS__PROD_EU__PASSWORD"),
        ("Growth", "Prod EU 2", "STEAD_GROWTH__PROD_EU_2__PASSWORD"),
        ("--x--", "--y--", "STEAD_X__Y__PASSWORD"),
        ("growth", "\u751f\u4ea7", "STEAD_GROWTH__X76AB7D3B__PASSWORD"),
    ],
)
def test_env_var_names(project: str, environment: str, expected: str) -> None:
    assert env_var_name(project, environment, "password") == expected


def test_env_var_names_differ_across_projects_and_environments() -> None:
    """Where the parts are cut cannot make two pairs meet: a-b / c is not a / b-c."""
    pairs = [("a-b", "c"), ("a", "b-c"), ("a", "b"), ("b", "a"), ("finance", "prod")]
    names = {env_var_name(p, e, "password") for p, e in pairs}
    assert len(names) == len(pairs)


def test_stead_env_profile_command(settings: Settings, tmp_path: Path) -> None:
    with serve_here(settings) as served:
        url, client_id, secret = served.url, served.client_id, served.client_secret
        with httpx.Client(base_url=url, headers=served.headers()) as api:
            env = provision(api, {}, "redshift")  # type: ignore[arg-type]
            body = env.with_properties(password={"value": PASSWORD_CANARY})
            assert api.post(env.base, json=body).status_code == 201
        runner = CliRunner()
        flags = ["--url", url, "--client-id", client_id, "--client-secret", secret]
        result = runner.invoke(cli, ["env", "profile", env.project_id, "prod", *flags])
        assert result.exit_code == 0, result.output
        assert PASSWORD_CANARY not in result.output
        target = yaml.safe_load(result.stdout)["finance-analytics"]["outputs"]["prod"]
        assert target["password"] == _env_var("STEAD_FINANCE_ANALYTICS__PROD__PASSWORD")
        assert target["host"] == "finance.cq1example.eu-west-1.redshift.amazonaws.com"

        bad = runner.invoke(
            cli, ["env", "profile", env.project_id, "prod", "--format", "toml", *flags]
        )
        assert bad.exit_code == 1
        assert "format:" in bad.output
        missing = runner.invoke(cli, ["env", "profile", env.project_id, "nope", *flags])
        assert missing.exit_code == 1
        assert (
            missing.output == "error: Environment 'nope' not found in project 'finance-analytics'\n"
        )

        by_name = runner.invoke(cli, ["env", "profile", "Finance-Analytics", "prod", *flags])
        assert by_name.exit_code == 0, by_name.output
        assert by_name.stdout == result.stdout
        no_project = runner.invoke(cli, ["env", "profile", "finance", "prod", *flags])
        assert no_project.exit_code == 1
        assert "no such project: 'finance'" in no_project.output

        # --into merges into an existing profiles.yml: other profiles, targets and comments stay
        profiles = tmp_path / "dbt" / "profiles.yml"
        profiles.parent.mkdir()
        profiles.write_text(MINE)
        profiles.chmod(0o640)
        with httpx.Client(base_url=url, headers=served.headers()) as api:
            assert api.post(env.base, json={**body, "name": "dev"}).status_code == 201
        for name in ("prod", "dev", "prod"):  # the second prod replaces the first
            merged = runner.invoke(
                cli, ["env", "profile", "finance-analytics", name, "--into", str(profiles), *flags]
            )
            assert merged.exit_code == 0, merged.output
            assert merged.stdout == ""
            assert f"STEAD_FINANCE_ANALYTICS__{name.upper()}__PASSWORD" in merged.stderr
        text = profiles.read_text()
        assert text.startswith(MINE.split("finance-analytics:")[0])  # untouched, comments too
        assert "# keep this comment" in text and PASSWORD_CANARY not in text
        document = yaml.safe_load(text)
        assert document["jaffle_shop"] == yaml.safe_load(MINE)["jaffle_shop"]
        finance = document["finance-analytics"]
        assert finance["target"] == "mine"  # the user's default target is kept
        assert list(finance["outputs"]) == ["mine", "prod", "dev"]
        assert (
            finance["outputs"]["prod"]
            == yaml.safe_load(result.stdout)["finance-analytics"]["outputs"]["prod"]
        )
        assert finance["outputs"]["dev"]["password"] == _env_var(
            "STEAD_FINANCE_ANALYTICS__DEV__PASSWORD"
        )
        assert profiles.stat().st_mode & 0o777 == 0o640

        fresh = tmp_path / "new" / "profiles.yml"
        created = runner.invoke(
            cli, ["env", "profile", env.project_id, "dev", "--into", str(fresh), *flags]
        )
        assert created.exit_code == 0, created.output
        assert fresh.stat().st_mode & 0o777 == 0o600
        assert yaml.safe_load(fresh.read_text())["finance-analytics"]["target"] == "dev"

        broken = tmp_path / "broken.yml"
        broken.write_text("jaffle_shop: [unclosed\n")
        refused = runner.invoke(
            cli, ["env", "profile", env.project_id, "dev", "--into", str(broken), *flags]
        )
        assert refused.exit_code == 1 and "is not valid YAML" in refused.output
        assert broken.read_text() == "jaffle_shop: [unclosed\n"


MINE = """\
# my dbt profiles
jaffle_shop:  # keep this comment
  target: dev
  outputs:
    dev:
      type: duckdb
      path: 'jaffle.duckdb'
finance-analytics:
  target: mine
  outputs:
    mine:
      type: redshift
      host: localhost
"""


def test_merging_into_a_file_of_comments_only_keeps_them() -> None:
    from stead.cli.env import merge_profiles

    addition = "# header\nfinance:\n  target: prod\n  outputs:\n    prod:\n      type: redshift\n"
    merged = merge_profiles("# profiles go here\n# (none yet)\n", addition)
    assert merged.startswith("# profiles go here\n# (none yet)\n")
    assert yaml.safe_load(merged) == yaml.safe_load(addition)
    with pytest.raises(ValueError, match="not a mapping of dbt profiles"):
        merge_profiles("- a\n- b\n", addition)
