"""Stead's Python SDK: a typed client of the HTTP API.

    from stead.sdk import Client

    with Client("https://stead.example.com", client_id="...", client_secret="...") as stead:
        created = stead.projects.create(
            {"name": "finance", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"}
        )
        for environment in stead.environments.list(created.project_id):
            print(environment.name)

Bodies are the wire models of ``stead.<resource>.schemas`` or plain dicts in wire form. Errors
are :class:`ApiError` subclasses named after the status. Importing the SDK loads no server code
(only httpx, pydantic and the wire schemas).
"""

from stead.sdk.client import Client
from stead.sdk.errors import (
    ApiError,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    SteadError,
    TransportError,
    Unauthorized,
    ValidationError,
)

__all__ = [
    "ApiError",
    "Client",
    "Conflict",
    "Forbidden",
    "NotFound",
    "RateLimited",
    "ServerError",
    "SteadError",
    "TransportError",
    "Unauthorized",
    "ValidationError",
]
