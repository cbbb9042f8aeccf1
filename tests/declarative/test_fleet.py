"""Fleet provisioning against a real ``stead serve`` (SQLite and PostgreSQL): parallel apply
under failures and a rate limit, people and access in the file, saved plans, ``plan --json``,
and the bulk state read that plans use."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stead.sdk import Client
from stead.settings import Settings
from tests.declarative.documents import bulk, redshift_environment, write
from tests.declarative.test_apply import cli
from tests.support.flaky_proxy import Fault, flaky_proxy
from tests.support.served import Served, serve_here
from tests.support.smtp_server import SmtpServer, smtp_server, smtp_servers  # noqa: F401

PASSWORD = "CANARY-inline-password-7f3a"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def served(settings: Settings) -> Iterator[Served]:
    with serve_here(settings) as running:
        yield running


def _writes(seen: list[Any]) -> list[str]:
    return [f"{s.method} {s.path}" for s in seen if s.method != "GET" and "/oauth/" not in s.path]


def _fleet(prefix: str, count: int) -> dict[str, Any]:
    document = bulk(count)
    for project in document["projects"]:
        project["name"] = f"{prefix}{project['name']}"
        project["secrets"] = [{"name": "api-key", "type": "PASSWORD", "value": PASSWORD}]
        project["environments"].append(redshift_environment("dev"))
    return document


def _exported(served: Served, tmp_path: Path, prefix: str) -> list[dict[str, Any]]:
    """The exported projects whose names start with ``prefix``, without it and without ids."""
    out = tmp_path / f"export-{prefix}.yaml"
    assert cli(served, "export", "--all", "-o", str(out)).exit_code == 0
    text = UUID.sub("<id>", out.read_text())
    projects = yaml.safe_load(text)["projects"]
    chosen = [p for p in projects if p["name"].startswith(prefix)]
    for project in chosen:
        project["name"] = project["name"].removeprefix(prefix)
    return sorted(chosen, key=lambda p: p["name"])


def test_parallel_apply_under_failures_and_a_rate_limit_ends_like_a_serial_one(
    served: Served, tmp_path: Path
) -> None:
    serial = write(tmp_path / "serial.yaml", _fleet("s-", 6))
    done = cli(served, "apply", "-f", str(serial), "--auto-approve", "--parallelism", "1")
    assert done.exit_code == 0, done.output

    parallel = write(tmp_path / "parallel.yaml", _fleet("p-", 6))
    with flaky_proxy(served.url) as proxy:
        # a 500 in the middle of the run: nothing more is started, the run fails
        # (each new project is one POST /v1/provisioning with everything it holds)
        proxy.faults.append(
            Fault("POST", "/v1/provisioning", status=500, retry_after=None, times=1)
        )
        failed = cli(served, "apply", "-f", str(parallel), "--auto-approve", url=proxy.url)
        assert failed.exit_code == 1, failed.output
        assert "apply stopped" in failed.output
        # then a rate limit: every 429 is waited out (Retry-After), and the run finishes
        proxy.faults.append(Fault("POST", "/v1/provisioning", status=429, retry_after="1", times=4))
        seen = len(proxy.seen)
        again = cli(served, "apply", "-f", str(parallel), "--auto-approve", url=proxy.url)
        assert again.exit_code == 0, again.output
        limited = [s for s in proxy.seen[seen:] if s.status == 429]
        assert len(limited) == 4
        assert cli(served, "plan", "-f", str(parallel), url=proxy.url).exit_code == 0
    assert _exported(served, tmp_path, "p-") == _exported(served, tmp_path, "s-")
    assert PASSWORD not in failed.output + again.output
    assert PASSWORD not in served.log.read_text()


def test_state_read_answers_pages_of_projects_with_everything_in_them(
    served: Served, tmp_path: Path
) -> None:
    path = write(tmp_path / "fleet.yaml", _fleet("", 3))
    assert cli(served, "apply", "-f", str(path), "--auto-approve").exit_code == 0
    with Client(served.url, served.client_id, served.client_secret) as stead:
        states = list(stead.projects.states(names=["TEAM-0001", "team-0002", "nope"]))
        # in list order: creation order, and the apply made them in parallel
        assert sorted(s.project.name for s in states) == ["team-0001", "team-0002"]
        (one,) = [s for s in states if s.project.name == "team-0001"]
        assert [e.name for e in one.environments] == ["prod", "dev"]
        assert [c.name for c in one.connections] == ["finance-dwh-prod"]
        assert [s.name for s in one.secrets] == ["api-key"]
        assert one.repository is None and one.invitations == []
        paged = [s.project.name for s in stead.projects.states(page_size=2)]
        assert sorted(paged) == ["team-0000", "team-0001", "team-0002"]
        by_id = list(stead.projects.states(project_ids=[one.project.id]))
        assert [s.project.name for s in by_id] == ["team-0001"]
        sent = stead.requests_sent
        list(stead.projects.states())
        assert stead.requests_sent == sent + 1  # one page holds them all
    answer = cli(served, "export", "--project", "not-a-uuid")
    assert answer.exit_code == 1 and "projectId" in answer.output


def test_people_access_and_allow_lists_round_trip(
    settings: Settings,
    tmp_path: Path,
    smtp_servers: dict[str, SmtpServer],  # noqa: F811
) -> None:
    mail = smtp_servers["none"]
    mail.reset()
    mailing = {"smtp_host": mail.host, "smtp_port": mail.port, "smtp_security": "none"}
    document = _fleet("", 1)
    agent = document["agents"][0]
    agent["restrictedAccess"] = True
    agent["allowList"] = [{"projectName": "team-0000", "environments": ["prod", "dev"]}]
    project = document["projects"][0]
    project["members"] = [{"email": "Bob@Example.com", "projectRole": "contributor"}]
    project["environments"][0]["access"] = [{"email": "bob@example.com", "accessLevel": "runner"}]
    path = write(tmp_path / "people.yaml", document)
    with serve_here(settings.model_copy(update=mailing)) as served:
        applied = cli(served, "apply", "-f", str(path), "--auto-approve")
        assert applied.exit_code == 0, applied.output
        assert '] create project "team-0000" / member "Bob@Example.com"' in applied.output
        assert "access for bob@example.com is set once they are a member" in applied.output
        (message,) = mail.mailbox.messages
        link = re.search(r"/console/invitations/([A-Za-z0-9_-]{20,})", message.get_content())
        assert link is not None
        token = link.group(1)
        with Client(served.url, served.client_id, served.client_secret) as stead:
            stead.invitations.accept(token, {"password": "correct horse battery staple"})
        planned = cli(served, "plan", "-f", str(path))
        assert planned.exit_code == 2, planned.output
        assert 'environment "prod" / environment access "bob@example.com": create' in (
            planned.output
        )
        assert cli(served, "apply", "-f", str(path), "--auto-approve").exit_code == 0
        assert cli(served, "plan", "-f", str(path)).exit_code == 0

        exported = tmp_path / "exported.yaml"
        assert cli(served, "export", "--all", "-o", str(exported)).exit_code == 0
        written = yaml.safe_load(exported.read_text())
        (entry,) = written["projects"]
        assert entry["members"] == [{"email": "Bob@Example.com", "projectRole": "CONTRIBUTOR"}]
        prod = entry["environments"][0]
        assert prod["access"] == [{"email": "Bob@Example.com", "accessLevel": "runner"}]
        assert written["agents"][0]["allowList"] == [
            {"projectName": "team-0000", "environments": ["prod", "dev"]}
        ]
        with flaky_proxy(served.url) as proxy:
            again = cli(
                served,
                "apply",
                "-f",
                str(exported),
                "--auto-approve",
                url=proxy.url,
            )
            assert again.exit_code == 0 and "Nothing to do." in again.output, again.output
            assert _writes(proxy.seen) == []

        # the file takes the role away and drops the access: planned, and applied with --prune
        smaller = copy.deepcopy(document)
        smaller["projects"][0]["members"][0]["projectRole"] = "VIEWER"
        smaller["projects"][0]["environments"][0]["access"] = []
        write(path, smaller)
        planned = cli(served, "plan", "-f", str(path))
        assert "projectRole: 'CONTRIBUTOR' -> 'VIEWER'" in planned.output
        assert "1 object(s) on the server are not in the file" in planned.output
        assert cli(served, "apply", "-f", str(path), "--auto-approve", "--prune").exit_code == 0
        with Client(served.url, served.client_id, served.client_secret) as stead:
            pid = next(iter(stead.projects.list())).id
            (bob,) = [m for m in stead.members.list(pid) if m.principal_type == "user"]
            assert bob.project_role == "VIEWER"
            assert list(stead.environment_access.list(pid, "prod")) == []


def test_plan_json_and_a_saved_plan(served: Served, tmp_path: Path) -> None:
    document = _fleet("", 2)
    props = document["projects"][0]["environments"][1]["connectionOverrides"][0]
    props["connectionProperties"]["password"] = {"value": PASSWORD}
    path = write(tmp_path / "fleet.yaml", document)
    shown = cli(served, "plan", "-f", str(path), "--json")
    assert shown.exit_code == 2, shown.output
    assert PASSWORD not in shown.output
    plan = json.loads(shown.stdout)
    assert plan["formatVersion"] == 1 and plan["stateDigest"].startswith("sha256:")
    assert plan["summary"] == {"create": 13, "update": 0, "replace": 0, "delete": 0, "unchanged": 0}
    by_address = {c["address"]: c for c in plan["changes"]}
    dev = by_address['projects["team-0000"].environments["dev"]']
    assert dev["action"] == "create" and dev["before"] is None and dev["kind"] == "environment"
    properties = dev["after"]["connectionOverrides"][0]["connectionProperties"]
    assert properties["password"] == {"value": "(sensitive)"}
    assert properties["username"] == {"value": "analyst"}
    secret = by_address['projects["team-0000"].secrets["api-key"]']
    assert secret["after"] == {"name": "api-key", "type": "PASSWORD", "value": "(sensitive)"}
    assert 'agents["eu-west-1 fargate agent"]' in by_address

    saved = tmp_path / "plan.json"
    planned = cli(served, "plan", "-f", str(path), "--out", str(saved))
    assert planned.exit_code == 2 and PASSWORD not in saved.read_text()
    applied = cli(served, "apply", str(saved))
    assert applied.exit_code == 0, applied.output
    assert "Apply complete: 13 change(s)" in applied.output
    assert cli(served, "plan", "-f", str(path)).exit_code == 0
    # a saved plan is applied once: the server it was made from is gone
    stale = cli(served, "apply", str(saved))
    assert stale.exit_code == 1 and "the server changed since the plan was made" in stale.output

    # one change, saved; then someone changes the server: the plan is refused, nothing applied
    props["connectionProperties"]["defaultSchema"] = {"value": "staging"}
    write(path, document)
    shown = cli(served, "plan", "-f", str(path), "--json", "--out", str(saved))
    assert [c["address"] for c in json.loads(shown.stdout)["changes"]] == [
        'projects["team-0000"].environments["dev"]'
    ]
    with Client(served.url, served.client_id, served.client_secret) as stead:
        pid = next(p.id for p in stead.projects.list() if p.name == "team-0001")
        stead.projects.update(pid, {"description": "changed by hand"})
        refused = cli(served, "apply", str(saved))
        assert refused.exit_code == 1 and "server changed" in refused.output
        team = next(p.id for p in stead.projects.list() if p.name == "team-0000")
        dev_now = stead.environments.get(team, "dev").connection_overrides[0]
        assert dev_now.connection_properties["defaultSchema"] == {"value": "public"}
    # the drift is in the plan, and a saved plan of a changed file is refused too
    drift = cli(served, "plan", "-f", str(path))
    assert "description: 'changed by hand' -> null" in drift.output
    assert cli(served, "plan", "-f", str(path), "--out", str(saved)).exit_code == 2
    path.write_text(path.read_text() + "\n# edited\n")
    edited = cli(served, "apply", str(saved))
    assert edited.exit_code == 1 and "changed since the plan was made" in edited.output


def test_import_writes_what_was_made_by_hand_into_the_file(served: Served, tmp_path: Path) -> None:
    path = write(tmp_path / "fleet.yaml", _fleet("", 1))
    assert cli(served, "apply", "-f", str(path), "--auto-approve").exit_code == 0
    with Client(served.url, served.client_id, served.client_secret) as stead:
        team = next(iter(stead.projects.list())).id
        stead.connections.create(
            team,
            {
                "name": "by-hand",
                "platformConnectionType": "DWH",
                "authProvider": "REDSHIFT",
                "authType": "PASSWORD",
            },
        )
        stead.projects.create(
            {"name": "made $ by hand", "warehouse": "SNOWFLAKE", "agentDeploymentType": "HYBRID"}
        )
    drift = cli(served, "plan", "-f", str(path))
    assert drift.exit_code == 0 and "1 object(s) on the server are not in the file" in drift.output
    imported = cli(
        served, "import", "-f", str(path), "--project", "team-0000", "--project", "made $ by hand"
    )
    assert imported.exit_code == 0, imported.output
    assert 'imported projects["team-0000"].connections["by-hand"]' in imported.output
    assert 'imported projects["made $ by hand"]' in imported.output
    text = path.read_text()
    assert "${REDSHIFT_USER}" in text and "made $$ by hand" in text  # the file's own kept
    assert PASSWORD in text  # the file's own inline value stays; nothing else is written
    planned = cli(served, "plan", "-f", str(path))
    assert planned.exit_code == 0, planned.output
    assert "not in the file" not in planned.output
    again = cli(served, "import", "-f", str(path))
    assert again.exit_code == 0 and "Nothing to import" in again.output
    assert cli(served, "import", "-f", str(path), "--project", "nope").exit_code == 1


def test_a_new_project_is_one_request_ends_as_made_call_by_call_and_fails_whole(
    served: Served, tmp_path: Path
) -> None:
    # projects that exist get their contents one call per object
    by_call = write(tmp_path / "by-call.yaml", _fleet("c-", 3))
    with Client(served.url, served.client_id, served.client_secret) as stead:
        for i in range(3):
            stead.projects.create(
                {
                    "name": f"c-team-{i:04d}",
                    "warehouse": "REDSHIFT",
                    "agentDeploymentType": "HYBRID",
                }
            )
    assert cli(served, "apply", "-f", str(by_call), "--auto-approve").exit_code == 0

    # new ones: a request each, with everything they hold
    document = _fleet("n-", 3)
    # the server refuses the second one's secret reference (outside the project's scope)
    reference = document["projects"][1]["secretReferences"][0]
    scoped = reference["secretName"]
    reference["secretName"] = "someone-else/redshift"
    path = write(tmp_path / "new.yaml", document)
    with flaky_proxy(served.url) as proxy:
        failed = cli(
            served, "apply", "-f", str(path), "--auto-approve", "--parallelism", "1", url=proxy.url
        )
        assert failed.exit_code == 1, failed.output
        assert "is outside the project's AWS scope" in failed.output
        assert "secretReferences[0].secretName: " in failed.output
        assert _writes(proxy.seen) == ["POST /v1/provisioning"] * 2, failed.output
    with Client(served.url, served.client_id, served.client_secret) as stead:
        names = {p.name for p in stead.projects.list()}
    # the first project is made; nothing of the second is left; the third was not started
    assert {"n-team-0000", "n-team-0001", "n-team-0002"} & names == {"n-team-0000"}

    reference["secretName"] = scoped
    write(path, document)
    with flaky_proxy(served.url) as proxy:
        again = cli(served, "apply", "-f", str(path), "--auto-approve", url=proxy.url)
        assert again.exit_code == 0, again.output
        assert "Apply complete: 12 change(s)" in again.output
        assert _writes(proxy.seen) == ["POST /v1/provisioning"] * 2, failed.output
    assert cli(served, "plan", "-f", str(path)).exit_code == 0
    assert _exported(served, tmp_path, "n-") == _exported(served, tmp_path, "c-")
    assert PASSWORD not in failed.output + again.output + served.log.read_text()
