"""Declarative documents for the tests: two projects on both warehouses, and a bulk one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

AGENT = "eu-west-1 fargate agent"


def redshift_environment(name: str, **properties: dict[str, str]) -> dict[str, Any]:
    """A Redshift environment on ``finance-dwh-prod``; ``properties`` override the defaults."""
    return {
        "name": name,
        "displayName": name.capitalize(),
        "defaultAgentName": AGENT,
        "defaultUserAccessLevel": "readOnly",
        "defaultConnections": {"DWH": {"redshift": "finance-dwh-prod"}},
        "connectionOverrides": [
            {
                "connectionName": "finance-dwh-prod",
                "connectionProperties": {
                    "url": {"value": "examplecluster.abc123.eu-west-1.redshift.amazonaws.com"},
                    "port": {"value": "5439"},
                    "username": {"value": "${REDSHIFT_USER}"},
                    "password": {"secretName": "finance-prod-redshift", "secretKey": "password"},
                    "defaultDatabase": {"value": "finance"},
                    "useSsl": {"value": "TRUE"},
                    **properties,
                },
            }
        ],
    }


def two_projects(remote: Path) -> dict[str, Any]:
    """A Redshift project (customer agent, two environments, a git repository at ``remote``)
    and a Snowflake FULL_SAAS project on the hosted agent. Values are written the way people
    write them (lower-case enums, a Snowflake URL as account) to exercise normalisation."""
    return {
        "version": 1,
        "agents": [
            {
                "name": AGENT,
                "agentType": "data_productivity_cloud",
                "cloudProvider": "aws",
                "deployment": "fargate",
            }
        ],
        "projects": [
            {
                "name": "finance-analytics",
                "description": "Finance reporting on Redshift.",
                "warehouse": "redshift",
                "agentDeploymentType": "hybrid",
                "connections": [
                    {
                        "name": "finance-dwh-prod",
                        "platformConnectionType": "dwh",
                        "authProvider": "redshift",
                        "authType": "password",
                    }
                ],
                "secretReferences": [
                    {
                        "name": "finance-prod-redshift",
                        "agentName": AGENT,
                        "agentType": "AWS",
                        "secretName": "stead/{projectId}/prod/finance/redshift",
                        "secretKey": "password",
                    }
                ],
                "environments": [redshift_environment("prod"), redshift_environment("dev")],
                "repository": {
                    "provider": "git",
                    "repositoryName": "finance-pipelines",
                    "providerParameters": {"url": remote.as_uri()},
                    "token": "${GIT_TOKEN}",
                },
            },
            {
                "name": "growth-marketing",
                "warehouse": "SNOWFLAKE",
                "agentDeploymentType": "FULL_SAAS",
                "connections": [
                    {
                        "name": "growth-dwh-prod",
                        "platformConnectionType": "DWH",
                        "authProvider": "SNOWFLAKE",
                        "authType": "KEY_PAIR",
                    }
                ],
                "secretReferences": [
                    {
                        "name": "growth-prod-private-key",
                        "agentName": "hosted agent",
                        "agentType": "aws",
                        "secretName": "stead/{projectId}/prod/growth/snowflake",
                        "secretKey": "private_key",
                    }
                ],
                "environments": [
                    {
                        "name": "prod",
                        "defaultAgentName": "Hosted agent",
                        "defaultUserAccessLevel": "runner",
                        "defaultConnections": {"dwh": {"snowflake": "GROWTH-DWH-PROD"}},
                        "connectionOverrides": [
                            {
                                "connectionName": "growth-dwh-prod",
                                "connectionProperties": {
                                    "account": {
                                        "value": "https://AcmeOrg-Growth.snowflakecomputing.com/"
                                    },
                                    "username": {"value": "SVC_GROWTH"},
                                    "privateKey": {"secretName": "growth-prod-private-key"},
                                    "defaultWarehouse": {"value": "TRANSFORM_WH"},
                                },
                            }
                        ],
                    }
                ],
            },
        ],
    }


def bulk(count: int) -> dict[str, Any]:
    """``count`` Redshift projects, each with a connection, a secret reference and an
    environment (the benchmark's file)."""
    projects = []
    for i in range(count):
        env = redshift_environment("prod")
        env["connectionOverrides"][0]["connectionProperties"]["username"] = {"value": f"u{i}"}
        projects.append(
            {
                "name": f"team-{i:04d}",
                "warehouse": "REDSHIFT",
                "agentDeploymentType": "HYBRID",
                "connections": [
                    {
                        "name": "finance-dwh-prod",
                        "platformConnectionType": "DWH",
                        "authProvider": "REDSHIFT",
                        "authType": "PASSWORD",
                    }
                ],
                "secretReferences": [
                    {
                        "name": "finance-prod-redshift",
                        "agentName": AGENT,
                        "agentType": "AWS",
                        "secretName": f"stead/{{projectId}}/prod/team-{i:04d}/redshift",
                        "secretKey": "password",
                    }
                ],
                "environments": [env],
            }
        )
    return {
        "agents": [
            {
                "name": AGENT,
                "agentType": "data_productivity_cloud",
                "cloudProvider": "aws",
                "deployment": "fargate",
            }
        ],
        "projects": projects,
    }


def write(path: Path, document: dict[str, Any]) -> Path:
    """Write ``document`` as YAML to ``path``."""
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path
