"""HTTP route of the connection test (docs/api.md, Connection tests)."""

from __future__ import annotations

from fastapi import Request

from stead.identity.deps import EnvironmentRunner
from stead.pipeline.transaction import SessionDep, make_router
from stead.warehouses import connection_test
from stead.warehouses.schemas import ConnectionTestResult

router = make_router(prefix="/projects/{projectId}/environments", tags=["environments"])


@router.post(
    "/{environmentName}/connection-test",
    response_model=ConnectionTestResult,
    responses={
        400: {"description": "a secret the environment names cannot be found"},
        403: {
            "description": "a secret store refused Stead's credentials, a secret lies outside "
            "the project's scope, or another environment's secret is not the caller's to use"
        },
        502: {"description": "a secret store could not be reached or failed"},
        503: {
            "description": "the warehouse's driver is not installed, a secret store is not "
            "configured, or too many connection tests are running (Retry-After)"
        },
        504: {"description": "a secret store did not answer in time"},
    },
)
async def test_connection(
    ctx: EnvironmentRunner, session: SessionDep, request: Request
) -> ConnectionTestResult:
    """Open a session to the warehouse with the environment's resolved credentials and run a
    trivial query (Stead). The test ran whenever the answer is 200: ``ok`` tells whether the
    warehouse accepted, and ``error`` carries its own code when it did not."""
    return await connection_test.run_for_environment(
        request, session, actor=ctx.actor, project=ctx.project, environment=ctx.environment
    )
