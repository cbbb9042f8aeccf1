"""The declarative file: reading, ``${VAR}`` interpolation, validation and its JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from stead.cli.main import app
from stead.declarative.spec import (
    SpecError,
    file_variables,
    interpolate,
    json_schema,
    load,
    parse,
)
from stead.document import dump
from tests.declarative.documents import bulk, two_projects, write

ENV = {"REDSHIFT_USER": "analyst", "GIT_TOKEN": "t0ken"}


def test_the_schema_accepts_what_the_models_accept_and_refuses_typos(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema == json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    for document in (two_projects(tmp_path / "repo.git"), bulk(2), {}):
        assert list(validator.iter_errors(document)) == []
        parse(document, ENV)
    document = two_projects(tmp_path / "repo.git")
    props = document["projects"][0]["environments"][0]["connectionOverrides"][0]
    props["connectionProperties"]["password"] = {"secretName": "x", "secretKay": "password"}
    assert [e.message for e in validator.iter_errors(document)] == [
        "Additional properties are not allowed ('secretKay' was unexpected)"
    ]
    with pytest.raises(SpecError) as error:
        parse(document, ENV, source="f.yaml")
    assert any(
        p.startswith("f.yaml: projects[0].environments[0].connectionOverrides[0]")
        and p.endswith("connectionProperties.password.secretKay: unknown field")
        for p in error.value.problems
    ), error.value.problems


def test_interpolation() -> None:
    env = {"A": "alpha", "B": "b$b"}
    assert interpolate({"x": ["${A}-${B}", "$${A}", "cost $5", 3]}, env) == {
        "x": ["alpha-b$b", "${A}", "cost $5", 3]
    }
    with pytest.raises(SpecError) as error:
        interpolate({"x": {"y": "${MISSING}"}, "z": ["${not a name}"]}, env)
    assert error.value.problems == [
        "x.y: variable MISSING is not given: pass --var MISSING, or set STEAD_VAR_MISSING",
        "z[0]: ${not a name} is not a variable name",
    ]
    # what export writes reads back as the same text
    tricky = {"description": "costs $$5 and ${HOME}"}
    assert interpolate(json.loads(json.dumps(_yaml_round_trip(tricky))), {}) == tricky


def test_a_file_gets_only_the_variables_the_operator_names() -> None:
    environ = {
        "STEAD_VAR_GIT_TOKEN": "t0ken",
        "STEAD_VAR_": "nameless",
        "REDSHIFT_USER": "analyst",
        "HOME": "/home/operator",
        "STEAD_CLIENT_SECRET": "CANARY-client-secret",
    }
    given = file_variables(environ, ["REDSHIFT_USER", "REGION=eu-west-1"])
    assert given == {"GIT_TOKEN": "t0ken", "REDSHIFT_USER": "analyst", "REGION": "eu-west-1"}
    with pytest.raises(SpecError) as error:
        interpolate({"d": "${HOME} ${STEAD_CLIENT_SECRET}"}, given)
    assert "CANARY" not in str(error.value.problems)
    assert len(error.value.problems) == 2
    with pytest.raises(SpecError) as error:
        file_variables(environ, ["STEAD_CLIENT_SECRET", "stead_signing_key", "UNSET", "a-b"])
    assert error.value.problems == [
        "--var STEAD_CLIENT_SECRET: Stead's own settings and credentials are never given to a file",
        "--var stead_signing_key: Stead's own settings and credentials are never given to a file",
        "--var UNSET: environment variable UNSET is not set",
        "--var a-b: not a variable name",
    ]


def _yaml_round_trip(document: dict[str, str]) -> object:
    import yaml

    return yaml.safe_load(dump(document))


def test_load_merges_files_and_reports_every_problem(tmp_path: Path) -> None:
    document = two_projects(tmp_path / "repo.git")
    first = write(tmp_path / "a.yaml", {**document, "projects": document["projects"][:1]})
    second = write(tmp_path / "b.yaml", {"projects": document["projects"][1:], "agents": []})
    spec = load([first, second], ENV)
    assert [p.name for p in spec.projects] == ["finance-analytics", "growth-marketing"]
    env = spec.projects[0].environments[0]
    props = env.connection_overrides[0].connection_properties
    assert props["username"].value == "analyst"
    assert spec.projects[0].repository is not None
    assert spec.projects[0].repository.token is not None
    assert spec.projects[0].repository.token.get_secret_value() == "t0ken"
    assert "t0ken" not in repr(spec)
    with pytest.raises(SpecError) as error:
        load([first, first], ENV)
    assert error.value.problems == ["projects[1].name: 'finance-analytics' is already projects[0]"]
    with pytest.raises(SpecError) as error:
        load([first], {})
    assert {p.split(": ", 2)[2] for p in error.value.problems} == {
        "variable REDSHIFT_USER is not given: pass --var REDSHIFT_USER, "
        "or set STEAD_VAR_REDSHIFT_USER",
        "variable GIT_TOKEN is not given: pass --var GIT_TOKEN, or set STEAD_VAR_GIT_TOKEN",
    }
    broken = tmp_path / "broken.yaml"
    broken.write_text("projects: [\n")
    with pytest.raises(SpecError) as error:
        load([broken], ENV)
    assert error.value.problems[0].startswith(str(broken))


def test_references_inside_a_project_must_resolve(tmp_path: Path) -> None:
    document = two_projects(tmp_path / "repo.git")
    project = document["projects"][0]
    project["connections"].append(dict(project["connections"][0], name="FINANCE-DWH-PROD"))
    env = project["environments"][1]
    env["defaultConnections"] = {"DWH": {"redshift": "nope"}}
    env["connectionOverrides"][0]["connectionProperties"]["password"]["secretName"] = "gone"
    with pytest.raises(SpecError) as error:
        parse(document, ENV, source="f")
    assert error.value.problems == [
        "f: projects[0]: connections[1].name: 'FINANCE-DWH-PROD' is already connections[0]; "
        "environments[1].defaultConnections.DWH.redshift: no connection 'nope' in this project; "
        "environments[1].connectionOverrides[0].connectionProperties.password.secretName: "
        "no secret reference or secret 'gone' in this project"
    ]
