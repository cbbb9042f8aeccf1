"""AWS Secrets Manager through boto3's ``GetSecretValue`` (extra ``stead[aws]``).

Vendor rules (AWS Secrets Manager API Reference, "GetSecretValue"): ``SecretId`` is the secret's
name or ARN; the answer holds ``SecretString`` or ``SecretBinary``; a secret stored as a JSON
object carries several key/value pairs, of which a reference's ``secretKey`` picks one. Errors:
``ResourceNotFoundException`` (no such secret), ``InvalidRequestException`` (e.g. scheduled for
deletion), ``AccessDeniedException`` and the signature/credential errors (refused credentials),
``DecryptionFailure`` (KMS refused), ``InternalServiceError``.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from stead.secrets.resolvers.base import (
    access_denied,
    checked_policy,
    not_configured,
    not_found,
    not_text,
    pick,
    timed_out,
    unreachable,
)
from stead.settings import Settings

STORE = "AWS Secrets Manager"

_NOT_FOUND = {"ResourceNotFoundException", "InvalidRequestException", "InvalidParameterException"}
_DENIED = {
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredTokenException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
}


_SESSION_LOCK = threading.Lock()


@functools.cache
def _session() -> Any:
    """The process's boto3 session: its loader reads botocore's service model and endpoint
    data once, where a new session per client read them again (docs/decisions.md)."""
    import boto3

    return boto3.session.Session()


def aws_client(service: str, **options: Any) -> Any:
    """A boto3 client of ``service`` (``options`` as boto3's ``Session.client`` takes them),
    made from the process's one session under a lock: boto3's clients are thread-safe, its
    sessions are not (boto3 docs, "Multithreading or multiprocessing with clients").

    Raises:
        botocore.exceptions.NoRegionError: no region and no endpoint.
        ValueError: ``endpoint_url`` is not a valid URL.
    """
    with _SESSION_LOCK:
        return _session().client(service, **options)


@functools.lru_cache(maxsize=8)
def _secrets_manager(
    region: str,
    endpoint_url: str,
    access_key_id: str,
    secret_access_key: str,
    ca_bundle: str,
    timeout: float,
) -> Any:
    """A boto3 Secrets Manager client for these settings (empty strings: boto3's defaults),
    made once per process and settings (:func:`aws_client`).

    Raises:
        botocore.exceptions.NoRegionError: no region and no endpoint.
        ValueError: ``endpoint_url`` is not a valid URL.
    """
    from botocore.config import Config

    return aws_client(
        "secretsmanager",
        region_name=region or None,
        endpoint_url=endpoint_url or None,
        aws_access_key_id=access_key_id or None,
        aws_secret_access_key=secret_access_key or None,
        verify=ca_bundle or None,
        config=Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"total_max_attempts": 1},
        ),
    )


class AwsResolver:
    """Reads secrets from AWS Secrets Manager with the ``aws_*`` settings."""

    store = STORE

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _client(self) -> Any:
        try:
            import boto3  # noqa: F401 - the extra's presence
        except ImportError:
            raise not_configured(STORE, "install Stead with the aws extra") from None
        from botocore.exceptions import NoRegionError

        s = self.settings
        # Without an endpoint and a region boto3 finds AWS's own endpoint of its region.
        endpoint = s.aws_endpoint_url or (
            f"https://secretsmanager.{s.aws_region}.amazonaws.com" if s.aws_region else ""
        )
        if endpoint:
            checked_policy(s, endpoint)
        try:
            return _secrets_manager(
                s.aws_region,
                s.aws_endpoint_url,
                s.aws_access_key_id,
                s.aws_secret_access_key.get_secret_value(),
                s.secret_store_ca_bundle,
                s.secret_store_timeout_seconds,
            )
        except NoRegionError:
            raise not_configured(STORE, "no AWS region (STEAD_AWS_REGION)") from None
        except ValueError:
            raise not_configured(STORE, "STEAD_AWS_ENDPOINT_URL is not a valid URL") from None

    def resolve(self, name: str, *, key: str | None) -> str:
        """The value of secret ``name`` (name or ARN), or its JSON member ``key``; errors as in
        :mod:`stead.secrets.resolvers.base`."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        client = self._client()
        timeout = self.settings.secret_store_timeout_seconds
        try:
            answer = client.get_secret_value(SecretId=name)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = error.get("Code")
            if code in _NOT_FOUND:
                raise not_found(STORE, name) from None
            if code in _DENIED or status in (401, 403):
                raise access_denied(STORE, name) from None
            raise unreachable(STORE, f"it answered {code or status}") from None
        except (ConnectTimeoutError, ReadTimeoutError):
            raise timed_out(STORE, timeout) from None
        except (NoCredentialsError, PartialCredentialsError):
            raise not_configured(STORE, "no AWS credentials found") from None
        except BotoCoreError as exc:
            raise unreachable(STORE, f"connection failed ({type(exc).__name__})") from None
        if "SecretString" in answer:
            return pick(STORE, name, str(answer["SecretString"]), key)
        try:
            value = bytes(answer.get("SecretBinary", b"")).decode()
        except UnicodeDecodeError:
            raise not_text(STORE, name) from None
        return pick(STORE, name, value, key)
