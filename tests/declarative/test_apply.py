"""``stead plan`` / ``apply`` / ``export`` / ``login`` against a real ``stead serve``, on SQLite
and PostgreSQL."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from stead.cli.main import app
from stead.demo import create_bare_repository
from stead.sdk import Client
from stead.settings import Settings
from tests.declarative.documents import two_projects, write
from tests.support.flaky_proxy import Seen, flaky_proxy
from tests.support.served import Served, serve_here

GIT_TOKEN = "CANARY-git-token-5c1e"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: The changes of :func:`two_projects` a new project's ``POST /v1/provisioning`` makes: the
#: project, its connection, secret reference and environments.
PROVISIONED = {"finance-analytics": 5, "growth-marketing": 4}


@pytest.fixture
def served(settings: Settings) -> Iterator[Served]:
    with serve_here(settings) as running:
        yield running


@pytest.fixture
def document(tmp_path: Path) -> dict[str, Any]:
    return two_projects(create_bare_repository(tmp_path / "git" / "finance.git"))


def _env(served: Served, url: str | None = None, **extra: str) -> dict[str, str]:
    return {
        "STEAD_URL": url or served.url,
        "STEAD_CLIENT_ID": served.client_id,
        "STEAD_CLIENT_SECRET": served.client_secret,
        "STEAD_VAR_REDSHIFT_USER": "analyst",
        "STEAD_VAR_GIT_TOKEN": GIT_TOKEN,
        **extra,
    }


def cli(served: Served, *args: str, url: str | None = None, **extra: str) -> Result:
    """Run ``stead ARGS`` in this process against the server (or ``url``)."""
    return CliRunner().invoke(app, list(args), env=_env(served, url, **extra))


def _writes(seen: list[Seen]) -> list[str]:
    return [f"{s.method} {s.path}" for s in seen if s.method != "GET" and "/oauth/" not in s.path]


def _sdk(served: Served) -> Client:
    return Client(served.url, served.client_id, served.client_secret)


def test_apply_creates_everything_and_then_nothing_changes(
    served: Served, document: dict[str, Any], tmp_path: Path
) -> None:
    path = write(tmp_path / "stead.yaml", document)
    planned = cli(served, "plan", "-f", str(path))
    assert planned.exit_code == 2, planned.output
    assert "Plan: 11 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged." in (
        planned.output
    )
    with flaky_proxy(served.url) as proxy:
        applied = cli(served, "apply", "-f", str(path), "--auto-approve", url=proxy.url)
        assert applied.exit_code == 0, applied.output
        assert "[11/11] create " in applied.output  # plain progress: not a terminal
        assert '] create project "finance-analytics" / repository' in applied.output
        # the agent, each new project with everything it holds, then the repository
        assert [UUID.sub("<id>", w) for w in _writes(proxy.seen)] == [
            "POST /v1/agents",
            "POST /v1/provisioning",
            "POST /v1/provisioning",
            "POST /v1/projects/<id>/repositories",
        ]
        seen = len(proxy.seen)
        again = cli(served, "apply", "-f", str(path), "--auto-approve", url=proxy.url)
        assert again.exit_code == 0 and "Nothing to do." in again.output
        assert _writes(proxy.seen[seen:]) == []
    assert cli(served, "plan", "-f", str(path)).exit_code == 0

    with _sdk(served) as stead:
        projects = {p.name: p for p in stead.projects.list()}
        assert set(projects) == {"finance-analytics", "growth-marketing"}
        finance, growth = projects["finance-analytics"].id, projects["growth-marketing"].id
        assert [e.name for e in stead.environments.list(finance)] == ["prod", "dev"]
        prod = stead.environments.get(finance, "prod")
        props = prod.connection_overrides[0].connection_properties
        assert props["username"] == {"value": "analyst"} and props["useSsl"] == {"value": "true"}
        snowflake = stead.environments.get(growth, "prod")
        account = snowflake.connection_overrides[0].connection_properties["account"]
        assert account == {"value": "acmeorg-growth"}
        assert snowflake.default_agent_name == "Hosted agent"
        assert stead.repositories.get(finance).default_branch == "main"
        assert sorted(a.name for a in stead.agents.list()) == [
            "Hosted agent",
            "eu-west-1 fargate agent",
        ]
    outputs = planned.output + applied.output + again.output
    assert GIT_TOKEN not in outputs and GIT_TOKEN not in served.log.read_text()


def test_export_then_apply_is_a_no_op(
    served: Served, document: dict[str, Any], tmp_path: Path
) -> None:
    path = write(tmp_path / "stead.yaml", document)
    assert cli(served, "apply", "-f", str(path), "--auto-approve").exit_code == 0
    with _sdk(served) as stead:  # and something made without the file, by hand
        pid = stead.projects.create(
            {"name": "costs $$ ${HOME}", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"}
        ).project_id
        stead.connections.create(
            pid,
            {
                "name": "dwh",
                "platformConnectionType": "DWH",
                "authProvider": "REDSHIFT",
                "authType": "PASSWORD",
            },
        )
        # a secret reference made with the DPC body that names no agent (inside the project's
        # default scope)
        stead.secret_references.create(
            pid,
            "no-agent",
            {
                "agentType": "AWS",
                "secretReferenceType": "PASSWORD",
                "secretName": f"stead/{pid}/prod/costs",
            },
        )
    exported = tmp_path / "exported.yaml"
    result = cli(served, "export", "--all", "-o", str(exported))
    assert result.exit_code == 0, result.output
    text = exported.read_text()
    assert GIT_TOKEN not in text and "token" not in text
    written = yaml.safe_load(text)
    names = [p["name"] for p in written["projects"]]  # in creation order
    assert sorted(names[:2]) == ["finance-analytics", "growth-marketing"]  # made in parallel
    assert names[2] == "costs $$$$ $${HOME}"
    assert [a["name"] for a in written["agents"]] == ["eu-west-1 fargate agent"]
    assert written["projects"][2]["secretReferences"] == [
        {
            "name": "no-agent",
            "agentType": "AWS",
            "secretReferenceType": "PASSWORD",
            "secretName": f"stead/{pid}/prod/costs",
        }
    ]
    with flaky_proxy(served.url) as proxy:
        planned = cli(served, "plan", "-f", str(exported), url=proxy.url)
        assert planned.exit_code == 0, planned.output
        applied = cli(served, "apply", "-f", str(exported), "--auto-approve", url=proxy.url)
        assert applied.exit_code == 0 and "Nothing to do." in applied.output
        assert _writes(proxy.seen) == []
    one = cli(served, "export", "--project", pid)
    assert one.exit_code == 0
    assert [p["name"] for p in yaml.safe_load(one.stdout)["projects"]] == ["costs $$$$ $${HOME}"]
    assert cli(served, "export").exit_code == 1


def test_a_change_to_one_environment_property_updates_only_that(
    served: Served, document: dict[str, Any], tmp_path: Path
) -> None:
    path = write(tmp_path / "stead.yaml", document)
    assert cli(served, "apply", "-f", str(path), "--auto-approve").exit_code == 0
    with _sdk(served) as stead:
        finance = next(p for p in stead.projects.list() if p.name == "finance-analytics")
        before = {e: stead.environments.get(finance.id, e) for e in ("prod", "dev")}

    changed = copy.deepcopy(document)
    dev = changed["projects"][0]["environments"][1]
    dev["connectionOverrides"][0]["connectionProperties"]["defaultDatabase"] = {"value": "dev"}
    write(path, changed)
    planned = cli(served, "plan", "-f", str(path))
    assert planned.exit_code == 2
    assert "Plan: 0 to create, 1 to update, 0 to replace, 0 to delete, 10 unchanged." in (
        planned.output
    )
    assert (
        '~ project "finance-analytics" / environment "dev": update\n'
        "        connectionOverrides[0].connectionProperties.defaultDatabase: 'finance' -> 'dev'\n"
    ) in planned.output
    with flaky_proxy(served.url) as proxy:
        applied = cli(served, "apply", "-f", str(path), "--auto-approve", url=proxy.url)
        assert applied.exit_code == 0, applied.output
        assert _writes(proxy.seen) == [f"PATCH /v1/projects/{finance.id}/environments/dev"]
    with _sdk(served) as stead:
        after = {e: stead.environments.get(finance.id, e) for e in ("prod", "dev")}
        assert stead.projects.get(finance.id).updated_at == finance.updated_at
    assert after["prod"] == before["prod"]
    old = before["dev"].connection_overrides[0].connection_properties
    new = after["dev"].connection_overrides[0].connection_properties
    assert {k for k in old if old[k] != new.get(k)} == {"defaultDatabase"}
    assert new["defaultDatabase"] == {"value": "dev"}
    assert after["dev"].model_dump(exclude={"connection_overrides", "updated_at"}) == before[
        "dev"
    ].model_dump(exclude={"connection_overrides", "updated_at"})

    # a secret-bearing property is shown only as changed, and a removed optional one goes
    props = dev["connectionOverrides"][0]["connectionProperties"]
    props["password"] = {"secretName": "finance-prod-redshift", "secretKey": "other"}
    del props["useSsl"]
    props["defaultStorageLocation"] = {"value": "finance-bucket"}
    write(path, changed)
    planned = cli(served, "plan", "-f", str(path))
    assert "connectionProperties.password: changed (secret)" in planned.output
    assert "other" not in planned.output
    assert "connectionProperties.defaultStorageLocation: (none) -> 'finance-bucket'" in (
        planned.output
    )
    assert cli(served, "apply", "-f", str(path), "--auto-approve").exit_code == 0
    assert cli(served, "plan", "-f", str(path)).exit_code == 0

    # a property with a default that the file stops naming returns to its default
    props["defaultSchema"] = {"value": "staging"}
    write(path, changed)
    assert cli(served, "apply", "-f", str(path), "--auto-approve").exit_code == 0
    del props["defaultSchema"]
    write(path, changed)
    planned = cli(served, "plan", "-f", str(path))
    assert "connectionProperties.defaultSchema: 'staging' -> 'public'" in planned.output
    assert cli(served, "apply", "-f", str(path), "--auto-approve").exit_code == 0
    assert cli(served, "plan", "-f", str(path)).exit_code == 0
    with _sdk(served) as stead:
        final = stead.environments.get(finance.id, "dev").connection_overrides[0]
    assert final.connection_properties["defaultSchema"] == {"value": "public"}


def _made(writes: list[Seen]) -> int:
    """How many of the plan's changes ``writes`` made: one each, but a new project's
    provisioning request makes the project with everything it holds."""
    return sum(
        PROVISIONED[json.loads(w.body)["project"]["name"]] if w.path == "/v1/provisioning" else 1
        for w in writes
    )


@pytest.mark.parametrize(
    ("how", "after_writes", "parallelism"),
    [("kill", 2, 1), ("kill", 4, 1), ("interrupt", 3, 1), ("kill", 2, 10), ("interrupt", 3, 10)],
)
def test_an_apply_stopped_midway_converges_when_run_again(
    served: Served,
    document: dict[str, Any],
    tmp_path: Path,
    how: str,
    after_writes: int,
    parallelism: int,
) -> None:
    """Serially the stop comes after exactly ``after_writes`` changes; in parallel, other
    projects' requests already sent also land: either way, running again converges."""
    path = write(tmp_path / "stead.yaml", document)
    env = {**os.environ, **_env(served)}
    proc: subprocess.Popen[str] | None = None
    writes: list[Seen] = []

    def stop_after(seen: Seen) -> None:
        if seen.method != "GET" and "/oauth/" not in seen.path:
            writes.append(seen)
            if len(writes) == after_writes and proc is not None:
                # the server has made the change; the client never hears back
                proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
                if how == "kill":
                    proc.wait()

    with flaky_proxy(served.url) as proxy:
        proxy.after_forward = stop_after
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "stead.cli.main", "apply", "-f", str(path)),
                *("--auto-approve", "--parallelism", str(parallelism)),
            ],
            env={**env, "STEAD_URL": proxy.url},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output, _ = proc.communicate(timeout=120)
    if how == "kill":
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130, output
        assert "run `stead apply` again to finish" in output
    left = cli(served, "plan", "-f", str(path))
    if parallelism == 1:
        assert len(writes) == after_writes
    else:
        assert len(writes) >= after_writes
    made = _made(writes)
    assert left.exit_code == (0 if made == 11 else 2), left.output
    assert f"Plan: {11 - made} to create" in left.output
    finished = cli(served, "apply", "-f", str(path), "--auto-approve")
    assert finished.exit_code == 0, finished.output
    assert cli(served, "plan", "-f", str(path)).exit_code == 0
    with _sdk(served) as stead:
        projects = list(stead.projects.list())
        assert sorted(p.name for p in projects) == ["finance-analytics", "growth-marketing"]
        assert len(list(stead.agents.list())) == 2
        for project in projects:
            assert len(list(stead.connections.list(project.id))) == 1
            assert len(list(stead.secret_references.list(project.id))) == 1


def test_prune_deletes_only_when_asked(
    served: Served, document: dict[str, Any], tmp_path: Path
) -> None:
    path = write(tmp_path / "stead.yaml", document)
    assert cli(served, "apply", "-f", str(path), "--auto-approve").exit_code == 0
    smaller = copy.deepcopy(document)
    finance = smaller["projects"][0]
    del finance["environments"][1], finance["repository"]
    write(path, smaller)
    planned = cli(served, "plan", "-f", str(path))
    assert planned.exit_code == 0
    assert "2 object(s) on the server are not in the file; --prune deletes them." in (
        planned.output
    )
    pruning = cli(served, "plan", "-f", str(path), "--prune")
    assert pruning.exit_code == 2
    assert '- project "finance-analytics" / environment "dev": delete' in pruning.output
    assert '- project "finance-analytics" / repository "finance-pipelines": delete' in (
        pruning.output
    )
    assert cli(served, "apply", "-f", str(path), "--auto-approve").exit_code == 0
    assert cli(served, "plan", "-f", str(path), "--prune").exit_code == 2
    assert cli(served, "apply", "-f", str(path), "--prune", "--auto-approve").exit_code == 0
    assert cli(served, "plan", "-f", str(path), "--prune").exit_code == 0
    with _sdk(served) as stead:
        pid = next(p.id for p in stead.projects.list() if p.name == "finance-analytics")
        assert [e.name for e in stead.environments.list(pid)] == ["prod"]


def test_what_the_api_cannot_do_is_an_error_before_any_change(
    served: Served, document: dict[str, Any], tmp_path: Path
) -> None:
    path = write(tmp_path / "stead.yaml", document)
    assert cli(served, "apply", "-f", str(path), "--auto-approve").exit_code == 0
    wrong = copy.deepcopy(document)
    wrong["projects"][0]["warehouse"] = "SNOWFLAKE"
    wrong["projects"][1]["environments"][0]["defaultAgentName"] = "nobody"
    wrong["agents"][0]["deployment"] = "eks"
    properties = wrong["projects"][1]["environments"][0]["connectionOverrides"][0][
        "connectionProperties"
    ]
    properties["privateKey"] = {"value": "not a key"}
    write(path, wrong)
    result = cli(served, "plan", "-f", str(path))
    assert result.exit_code == 1
    for expected in (
        'project "finance-analytics": warehouse cannot change (REDSHIFT -> SNOWFLAKE)',
        'project "growth-marketing" / environment "prod": no agent named "nobody"',
        "agents cannot be changed through the API (deployment: 'fargate' -> 'eks')",
        'project "growth-marketing" / environment "prod": '
        "connectionOverrides[0].connectionProperties.privateKey.value: ",
    ):
        assert expected in result.output
    # no token for a repository to associate
    fresh = copy.deepcopy(document)
    fresh["projects"][0]["name"] = "new-project"
    del fresh["projects"][0]["repository"]["token"]
    write(path, fresh)
    result = cli(served, "plan", "-f", str(path))
    assert result.exit_code == 1 and "a token is needed to associate it" in result.output


def test_a_refused_change_stops_apply_and_plan_shows_the_rest(
    served: Served, document: dict[str, Any], tmp_path: Path
) -> None:
    # a FULL_SAAS project's environment must use the hosted agent: the server says 400
    document["projects"][1]["environments"][0]["defaultAgentName"] = "eu-west-1 fargate agent"
    path = write(tmp_path / "stead.yaml", document)
    result = cli(served, "apply", "-f", str(path), "--auto-approve")
    assert result.exit_code == 1
    assert "defaultAgentId" in result.output and "error: 400" not in result.output
    assert "apply stopped" in result.output
    left = cli(served, "plan", "-f", str(path))
    assert left.exit_code == 2
    assert '+ project "growth-marketing" / environment "prod": create' in left.output
    # That environment and the repository after it; projects apply in parallel, so changes of
    # the other project that had not started when apply stopped may be left too.
    to_create = re.search(r"Plan: (\d+) to create", left.output)
    assert to_create is not None and int(to_create.group(1)) >= 2, left.output
    assert cli(served, "apply", "-f", str(path), "--auto-approve").exit_code == 1


def test_a_file_cannot_read_the_operators_credentials(
    served: Served, document: dict[str, Any], tmp_path: Path
) -> None:
    """A stead.yaml from a data team's repository names ${STEAD_CLIENT_SECRET} in a project
    description: it is refused, whatever the environment holds, and never sent."""
    document["projects"][0]["description"] = "leak ${STEAD_CLIENT_SECRET} ${HOME}"
    path = write(tmp_path / "stead.yaml", document)
    seen: list[str] = []
    for args in (
        [],
        ["--var", "STEAD_CLIENT_SECRET"],
        ["--var", f"STEAD_CLIENT_SECRET={served.client_secret}"],
    ):
        for command in (["plan"], ["apply", "--auto-approve"]):
            result = cli(served, *command, "-f", str(path), *args, HOME="/home/operator")
            assert result.exit_code == 1, result.output
            seen.append(result.output)
    assert "variable STEAD_CLIENT_SECRET is not given" in seen[0]
    assert "Stead's own settings and credentials are never given" in seen[2]
    assert all(served.client_secret not in out and "/home/operator" not in out for out in seen)
    with _sdk(served) as stead:
        assert list(stead.projects.list()) == []
    # Named with --var, a variable of the environment is used.
    document["projects"] = document["projects"][:1]
    document["projects"][0]["description"] = "home is ${HOME}"
    write(tmp_path / "stead.yaml", document)
    args = ["apply", "--auto-approve", "-f", str(path), "--var", "HOME"]
    assert cli(served, *args, HOME="/home/operator").exit_code == 0
    with _sdk(served) as stead:
        assert [p.description for p in stead.projects.list()] == ["home is /home/operator"]


def test_a_secret_outside_the_projects_scope_stops_apply(
    served: Served, document: dict[str, Any], tmp_path: Path
) -> None:
    """Through ``stead apply``, a file naming another project's secret path gets the server's
    403, reported with the field, and apply stops there."""
    reference = document["projects"][0]["secretReferences"][0]
    reference["secretName"] = "stead/6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f/prod/finance/redshift"
    path = write(tmp_path / "stead.yaml", document)
    # a new project is made with everything it holds in one request: nothing of it is left
    result = cli(served, "apply", "-f", str(path), "--auto-approve")
    assert result.exit_code == 1
    assert "is outside the project's AWS scope" in result.output
    assert "error: 403" not in result.output
    assert "secretReferences[0].secretName: " in result.output
    assert "apply stopped" in result.output
    with _sdk(served) as client:
        assert "finance-analytics" not in [p.name for p in client.projects.list()]
        # a project that exists gets its secret reference on its own
        client.projects.create(
            {"name": "finance-analytics", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"}
        )
    result = cli(served, "apply", "-f", str(path), "--auto-approve")
    assert result.exit_code == 1
    assert "is outside the project's AWS scope" in result.output
    assert "error: 403" not in result.output
    assert "secretName: " in result.output and "apply stopped" in result.output
    with _sdk(served) as client:
        (project,) = [p for p in client.projects.list() if p.name == "finance-analytics"]
        assert list(client.secret_references.list(project.id)) == []
        assert client.secret_references.get_scopes(project.id).scopes[0].prefixes == [
            f"stead/{project.id}/"
        ]


def test_login_writes_a_private_profile_read_after_flags_and_environment(
    served: Served, document: dict[str, Any], tmp_path: Path
) -> None:
    config_home = tmp_path / "config"
    path = write(tmp_path / "stead.yaml", document)
    bare = {
        "XDG_CONFIG_HOME": str(config_home),
        "STEAD_VAR_REDSHIFT_USER": "a",
        "STEAD_VAR_GIT_TOKEN": "t",
    }
    unset = {"STEAD_URL": None, "STEAD_CLIENT_ID": None, "STEAD_CLIENT_SECRET": None}
    runner = CliRunner()
    refused = runner.invoke(
        app,
        ["login", "--url", served.url, "--client-id", served.client_id, "--client-secret", "x"],
        env={**bare, **unset},
    )
    assert refused.output == "error: client authentication failed\n"
    profile = config_home / "stead" / "config.toml"
    assert not profile.exists()
    missing = runner.invoke(app, ["plan", "-f", str(path)], env={**bare, **unset})
    assert missing.exit_code == 1 and "stead login" in missing.output

    login = runner.invoke(
        app,
        ["login", "--url", served.url, "--client-id", served.client_id],
        input=served.client_secret + "\n",
        env={**bare, **unset},
    )
    assert login.exit_code == 0, login.output
    assert served.client_secret not in login.output
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    assert served.client_secret in profile.read_text()
    assert runner.invoke(app, ["plan", "-f", str(path)], env={**bare, **unset}).exit_code == 2
    # the environment comes before the profile, and a flag before the environment
    dead = "http://127.0.0.1:9"
    env_first = runner.invoke(app, ["plan", "-f", str(path)], env={**bare, "STEAD_URL": dead})
    assert env_first.exit_code == 1 and "ConnectError" in env_first.output
    flag_first = runner.invoke(
        app, ["plan", "-f", str(path), "--url", served.url], env={**bare, "STEAD_URL": dead}
    )
    assert flag_first.exit_code == 2
    # a second profile keeps the first
    other = runner.invoke(
        app,
        ["login", "--profile", "other", "--url", served.url, "--client-id", served.client_id],
        input=served.client_secret + "\n",
        env={**bare, **unset},
    )
    assert other.exit_code == 0
    text = profile.read_text()
    assert '[profiles."default"]' in text and '[profiles."other"]' in text


def _pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def test_secret_values_are_written_once_and_shown_only_as_changed(
    served: Served, document: dict[str, Any], tmp_path: Path
) -> None:
    finance, growth = document["projects"]
    finance["secrets"] = [{"name": "finance-extra", "type": "PASSWORD", "value": "${EXTRA}"}]
    dev = finance["environments"][1]["connectionOverrides"][0]["connectionProperties"]
    dev["password"] = {"value": "${DEV_PASSWORD}"}
    props = growth["environments"][0]["connectionOverrides"][0]["connectionProperties"]
    props["privateKey"] = {"value": "${SNOWFLAKE_KEY}"}
    path = write(tmp_path / "stead.yaml", document)
    canaries = {
        "STEAD_VAR_EXTRA": "CANARY-extra-3f9a",
        "STEAD_VAR_DEV_PASSWORD": "CANARY-dev-password-77b1",
        "STEAD_VAR_SNOWFLAKE_KEY": _pem(),
    }
    outputs = []

    def run(*args: str, **env: str) -> Result:
        result = cli(served, *args, **{**canaries, **env})
        outputs.append(result.output)
        return result

    assert run("apply", "-f", str(path), "--auto-approve").exit_code == 0
    assert run("plan", "-f", str(path)).exit_code == 0
    # a password cannot be read back: a new one in the environment is not seen...
    assert run("plan", "-f", str(path), STEAD_VAR_DEV_PASSWORD="CANARY-dev-new-0c2d").exit_code == 0
    # ...until asked for
    rewrite = run(
        "plan", "-f", str(path), "--write-secrets", STEAD_VAR_DEV_PASSWORD="CANARY-dev-new-0c2d"
    )
    assert rewrite.exit_code == 2
    assert "connectionProperties.password: rewritten (secret)" in rewrite.output
    assert "value: rewritten (secret)" in rewrite.output
    applied = run(
        "apply",
        "-f",
        str(path),
        "--auto-approve",
        "--write-secrets",
        STEAD_VAR_DEV_PASSWORD="CANARY-dev-new",
    )
    assert applied.exit_code == 0
    with _sdk(served) as stead:
        pid = next(p.id for p in stead.projects.list() if p.name == "finance-analytics")
        assert stead.secrets.get(pid, "finance-extra").version == 2
        stored = stead.environments.get(pid, "dev").connection_overrides[0]
        assert stored.connection_properties["password"]["set"] is True
    # a private key is compared by its public-key fingerprint
    changed = run("plan", "-f", str(path), STEAD_VAR_SNOWFLAKE_KEY=_pem())
    assert changed.exit_code == 2
    assert "connectionProperties.privateKey: changed (secret)" in changed.output

    exported = tmp_path / "exported.yaml"
    assert run("export", "--all", "-o", str(exported)).exit_code == 0
    written = yaml.safe_load(exported.read_text())
    (finance,) = [p for p in written["projects"] if p["name"] == "finance-analytics"]
    assert finance["secrets"] == [{"name": "finance-extra", "type": "PASSWORD"}]
    assert run("plan", "-f", str(exported)).exit_code == 0
    # the secrets environments own are theirs, never pruned as strangers
    assert run("plan", "-f", str(path), "--prune").exit_code == 0
    log = served.log.read_text()
    for name, value in canaries.items():
        for text in [*outputs, exported.read_text(), log]:
            assert value.strip() not in text, name
