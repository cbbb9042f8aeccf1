"""AWS Secrets Manager through boto3's ``GetSecretValue`` (extra ``stead[aws]``).

Vendor rules (AWS Secrets Manager API Reference, "GetSecretValue"): ``SecretId`` is the secret's
name or ARN; the answer holds ``SecretString`` or ``SecretBinary``; a secret stored as a JSON
object carries several key/value pairs, of which a reference's ``secretKey`` picks one. Errors:
``ResourceNotFoundException`` (no such secret), ``InvalidRequestException`` (e.g. scheduled for
deletion), ``AccessDeniedException`` and the signature/credential errors (refused credentials),
``DecryptionFailure`` (KMS refused), ``InternalServiceError``.
"""

from __future__ import annotations

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


class AwsResolver:
    """Reads secrets from AWS Secrets Manager with the ``aws_*`` settings."""

    store = STORE

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _client(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import NoRegionError
        except ImportError:
            raise not_configured(STORE, "install Stead with the aws extra") from None
        s = self.settings
        # Without an endpoint and a region boto3 finds AWS's own endpoint of its region.
        endpoint = s.aws_endpoint_url or (
            f"https://secretsmanager.{s.aws_region}.amazonaws.com" if s.aws_region else ""
        )
        if endpoint:
            checked_policy(s, endpoint)
        try:
            return boto3.session.Session().client(
                "secretsmanager",
                region_name=s.aws_region or None,
                endpoint_url=s.aws_endpoint_url or None,
                aws_access_key_id=s.aws_access_key_id or None,
                aws_secret_access_key=s.aws_secret_access_key.get_secret_value() or None,
                verify=s.secret_store_ca_bundle or None,
                config=Config(
                    connect_timeout=s.secret_store_timeout_seconds,
                    read_timeout=s.secret_store_timeout_seconds,
                    retries={"total_max_attempts": 1},
                ),
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
