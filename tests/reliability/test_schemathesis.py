"""schemathesis against the app's own OpenAPI document: every operation, authenticated as a
SUPER_ADMIN, schema-valid and schema-invalid input, with path parameters that name real objects
half of the time. No answer may be a 5xx, and every answer must match its documented status,
content type, headers and schema."""

from __future__ import annotations

from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS
from sqlalchemy.orm import Session, sessionmaker

from tests.support.factories import create_agent, example

#: Generated cases per operation and backend (over 50 operations: well over 1000 in total).
EXAMPLES_PER_OPERATION = 16
MIN_TOTAL_CASES = 1000

#: Checks that judge business rules the schema cannot express: schema-valid data may still be
#: refused (e.g. a connection whose provider differs from the project's warehouse is a 400).
EXCLUDED_CHECKS = {"positive_data_acceptance"}


def _provision(http: TestClient, headers: dict[str, str]) -> dict[str, str]:
    """A project with an agent, a DWH connection, a secret reference and an environment."""
    project_id = http.post(
        "/v1/projects", json=example("01-create-project-redshift"), headers=headers
    ).json()["projectId"]
    agent_id = create_agent(http, headers)["agentId"]
    base = f"/v1/projects/{project_id}"
    for path, body in [
        (f"{base}/data-platform-connections", example("03-create-connection-redshift")),
        (
            f"{base}/secret-references/finance-prod-redshift",
            example("04-create-secret-reference-aws", agentId=agent_id, projectId=project_id),
        ),
        (f"{base}/environments", example("05-create-environment-redshift", agentId=agent_id)),
    ]:
        resp = http.post(path, json=body, headers=headers)
        assert resp.status_code == 201, resp.text
    return {
        "projectId": project_id,
        "agentId": agent_id,
        "connectionName": "finance-dwh-prod",
        "secretReferenceName": "finance-prod-redshift",
        "environmentName": "prod",
    }


def test_every_operation_answers_as_documented(
    http: TestClient, admin: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    real = _provision(http, admin)
    schema = schemathesis.openapi.from_asgi("/openapi.json", http.app)
    checks = [check for check in CHECKS.get_all() if check.__name__ not in EXCLUDED_CHECKS]
    total = 0
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    for operation in operations:
        names = {p.name for p in operation.path_parameters}
        fixed = {k: v for k, v in real.items() if k in names}
        strategies = [
            operation.as_strategy(mode, headers=admin, path_parameters=params)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            for params in ({}, fixed)
        ]
        cases = 0

        @given(case=st.one_of(strategies))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            nonlocal cases
            cases += 1
            # The admin's token as the caller's own headers, not as generated ones: schemathesis
            # then knows the request is authenticated, and checks once per operation that it is
            # refused without a token and with a wrong one.
            response = case.call(headers=admin)
            assert response.status_code < 500, f"{response.status_code} {response.text[:300]}"
            case.validate_response(response, checks=checks)

        try:
            run()
        except BaseException as exc:  # gather every operation's failure (groups included)
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:3000])
        total += cases
    assert not failures, "\n\n".join(failures)
    assert total >= MIN_TOTAL_CASES // 2, total


def test_the_document_has_no_422_and_problem_bodies(http: TestClient) -> None:
    spec = http.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            if path.startswith("/v1/"):
                assert {"400", "401", "403", "429", "503"} <= responses.keys(), (method, path)
            for status, response in responses.items():
                if status[0] in "45":
                    ref = response["content"]["application/problem+json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Problem"
    create = spec["paths"]["/v1/projects"]["post"]["responses"]
    assert {"201", "409", "413", "415"} <= create.keys()
