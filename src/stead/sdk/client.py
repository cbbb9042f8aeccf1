"""The SDK's HTTP client: OAuth 2.0 client credentials or a person's CLI grant (refresh
tokens, RFC 6749 section 6), retries, errors, pagination.

Only httpx, pydantic and the wire schemas are imported here, never the server.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from stead.identity.schemas import TokenResponse
from stead.sdk.errors import SteadError, TransportError, error_for
from stead.sdk.resources import (
    Agents,
    ApiClients,
    AuditEvents,
    Auth,
    Connections,
    EnvironmentAccess,
    Environments,
    Invitations,
    Members,
    Projects,
    Repositories,
    ScimTokens,
    SecretReferences,
    Secrets,
    Users,
)
from stead.tls import client_context

M = TypeVar("M", bound=BaseModel)

#: Statuses worth retrying: rate limited, or an upstream or the server briefly unavailable.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
PROBLEM_JSON = "application/problem+json"


def is_transient(response: httpx.Response) -> bool:
    """Whether waiting may change ``response``: 429, 502, 504, and a 503 that either carries
    ``Retry-After`` or is not a problem document (a proxy or load balancer answering for a
    server that is down). A problem+json 503 without ``Retry-After`` names a cause that waiting
    does not remove (a warehouse driver that is not installed, a secret store this server is
    not configured for), so it is answered at once."""
    if response.status_code not in RETRY_STATUSES:
        return False
    if response.status_code != 503 or "retry-after" in response.headers:
        return True
    media_type = str(response.headers.get("content-type", "")).partition(";")[0].strip().lower()
    return media_type != PROBLEM_JSON


USER_AGENT = "stead-sdk/0.1.0"
#: The ``client_id`` of Stead's command line, a public client: the refresh grant names it.
CLI_CLIENT_ID = "stead-cli"


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` (RFC 9110 section 10.2.3) in seconds: delay-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Client:
    """A client of one Stead server.

    Args:
        url: the server's base URL, e.g. ``https://stead.example.com`` (a DPC-style base URL
            ending in ``/dpc`` works too).
        client_id, client_secret: API client credentials (needed by every route but
            :attr:`auth` login and invitation acceptance); the SDK obtains a bearer token from
            ``POST /oauth/dpc/token`` (RFC 6749 section 4.4), caches it, and fetches a new one
            shortly before it expires (or once, after a 401).
        token: a bearer token to use instead of client credentials.
        refresh_token: a person's CLI grant (``stead login``): the SDK exchanges it for an
            access token (RFC 6749 section 6) when ``token`` is missing or expires (at
            ``token_expires_at``, Unix seconds) and once after a 401. Each exchange uses the
            refresh token up and answers a new one, which :attr:`refresh_token` then holds and
            ``on_refresh`` receives (with the new access token) to store it: a used refresh
            token presented again revokes the grant.
        timeout: seconds per HTTP request.
        max_retries: retries of a request whose connection failed or whose answer is transient
            (:func:`is_transient`: 429, 502, 504, and a 503 that does not name a lasting
            cause); any other answer is returned at once. A POST is retried with the same
            ``Idempotency-Key``, so it never runs twice. A 429 pauses every thread using
            this client until its ``Retry-After`` (or the backoff) has passed.
        backoff: first delay between retries, in seconds; it doubles each time (with jitter) up
            to ``max_retry_wait``.
        max_retry_wait: the longest delay the client waits; a ``Retry-After`` longer than this
            is not waited for: the error is raised at once.
        transport: an httpx transport (tests, proxies).

    Resources mirror the API one to one: :attr:`projects`, :attr:`agents`,
    :attr:`connections`, :attr:`environments`, :attr:`secret_references`, :attr:`secrets`,
    :attr:`repositories`, :attr:`auth`, :attr:`api_clients`, :attr:`users`, :attr:`members`,
    :attr:`invitations`, :attr:`environment_access`, :attr:`audit_events`,
    :attr:`scim_tokens`. Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        token: str | None = None,
        refresh_token: str | None = None,
        token_expires_at: float | None = None,
        on_refresh: Callable[[TokenResponse], None] | None = None,
        timeout: float = 30.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_retry_wait: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._token_url = self.url.removesuffix("/dpc") + "/oauth/dpc/token"
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._on_refresh = on_refresh
        self._fixed_token = token if refresh_token is None else None
        self._token: str | None = token
        self._token_expires = float("inf") if self._fixed_token else 0.0
        if token and token_expires_at is not None:
            self._token_expires = time.monotonic() + token_expires_at - time.time() - 30
        self._token_lock = threading.Lock()
        self._count_lock = threading.Lock()
        #: ``time.monotonic()`` before which no request is sent: a 429's ``Retry-After``
        #: pauses every thread of this client, not only the one that was told.
        self._resume_at = 0.0
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_retry_wait = max_retry_wait
        #: HTTP requests sent so far (token requests and retries included).
        self.requests_sent = 0
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
            verify=client_context(),
        )
        self.projects = Projects(self)
        self.agents = Agents(self)
        self.connections = Connections(self)
        self.environments = Environments(self)
        self.secret_references = SecretReferences(self)
        self.secrets = Secrets(self)
        self.repositories = Repositories(self)
        self.auth = Auth(self)
        self.api_clients = ApiClients(self)
        self.users = Users(self)
        self.scim_tokens = ScimTokens(self)
        self.members = Members(self)
        self.invitations = Invitations(self)
        self.environment_access = EnvironmentAccess(self)
        self.audit_events = AuditEvents(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- authentication ----------------------------------------------------------------------

    @property
    def refresh_token(self) -> str | None:
        """The current refresh token of a person's CLI grant (None with client credentials)."""
        return self._refresh_token

    def token(self, form: Mapping[str, str]) -> TokenResponse:
        """``POST`` ``form`` to the token endpoint (RFC 6749 section 3.2) and return the answer.

        Raises:
            ApiError: the subclass of the status, with the RFC 6749 ``error`` as its title and
                ``error_description`` as its detail.
        """
        response = self._send("POST", self._token_url, data=dict(form))
        body = _json(response)
        if response.status_code != 200 or not isinstance(body, dict):
            error = body if isinstance(body, dict) else {}
            problem = {
                "title": str(error.get("error", "token request failed")),
                "detail": error.get("error_description") or error.get("error"),
            }
            raise error_for(
                response.status_code, problem, request_id=response.headers.get("x-request-id")
            )
        return TokenResponse.model_validate(body)

    def _fetch_token(self) -> None:
        if self._refresh_token is not None:
            answer = self.token(
                {
                    "grant_type": "refresh_token",
                    "client_id": CLI_CLIENT_ID,
                    "refresh_token": self._refresh_token,
                }
            )
            self._refresh_token = answer.refresh_token or self._refresh_token
            if self._on_refresh is not None:
                self._on_refresh(answer)
        elif self._client_id and self._client_secret:
            answer = self.token(
                {
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                }
            )
        else:
            raise SteadError(
                "no credentials: give client_id and client_secret, refresh_token, or token"
            )
        lifetime = float(answer.expires_in)
        self._token = answer.access_token
        # refresh ahead of expiry: a minute early, or a tenth of a short lifetime
        self._token_expires = time.monotonic() + lifetime - min(60.0, lifetime / 10)

    def access_token(self, *, renew: bool = False) -> str:
        """The cached bearer token, fetched anew when it is about to expire or ``renew`` is set.

        Raises:
            Unauthorized: the credentials were refused.
        """
        with self._token_lock:
            if self._fixed_token is None and (
                renew or self._token is None or time.monotonic() >= self._token_expires
            ):
                self._fetch_token()
            assert self._token is not None
            return self._token

    # -- requests ----------------------------------------------------------------------------

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with retries on connection failures and transient answers (class docstring)."""
        attempt = 0
        while True:
            pause = self._resume_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            try:
                with self._count_lock:
                    self.requests_sent += 1
                response = self._http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise TransportError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
                delay = self._backoff(attempt)
            else:
                if not is_transient(response) or attempt >= self.max_retries:
                    return response
                wait = retry_after_seconds(response.headers.get("retry-after"))
                if wait is not None and wait > self.max_retry_wait:
                    return response
                delay = wait if wait is not None else self._backoff(attempt)
                if response.status_code == 429:
                    with self._count_lock:
                        self._resume_at = max(self._resume_at, time.monotonic() + delay)
            time.sleep(delay)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        delay: float = self.backoff * 2**attempt * random.uniform(0.8, 1.2)
        return min(delay, self.max_retry_wait)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        authenticate: bool = True,
    ) -> httpx.Response:
        """Send a request to ``path`` (e.g. ``/v1/projects``), with the bearer token unless
        ``authenticate`` is false, and return the successful response.

        Every POST carries an ``Idempotency-Key`` (``idempotency_key`` or a fresh UUID), kept
        across retries (docs/api.md).

        Raises:
            ApiError: a subclass per status (:mod:`stead.sdk.errors`) for any 4xx/5xx answer.
            TransportError: the server could not be reached after every retry.
        """
        sent = dict(headers or {})
        if method.upper() == "POST":
            sent["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        url = self.url + path
        kwargs: dict[str, Any] = {"params": params}
        if json is not None:
            kwargs["json"] = json
        if authenticate:
            sent["Authorization"] = f"Bearer {self.access_token()}"
        response = self._send(method, url, headers=sent, **kwargs)
        if response.status_code == 401 and authenticate and self._fixed_token is None:
            sent["Authorization"] = f"Bearer {self.access_token(renew=True)}"
            response = self._send(method, url, headers=sent, **kwargs)
        if response.status_code >= 400:
            body = _json(response)
            problem = body if isinstance(body, dict) else {"detail": response.text[:500]}
            raise error_for(
                response.status_code, problem, request_id=response.headers.get("x-request-id")
            )
        return response

    def call(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        """:meth:`request`, then parse the JSON answer as ``model``."""
        return model.model_validate(self.request(method, path, **kwargs).json())

    def pages(
        self,
        model: type[M],
        path: str,
        *,
        page_size: int = 100,
        params: Mapping[str, Any] | None = None,
    ) -> Iterator[M]:
        """Iterate over every item of a paged list (docs/api.md: ``page``/``size``),
        fetching one page at a time; ``params`` are the list's filters."""
        page = 0
        while True:
            query = {**(params or {}), "page": page, "size": page_size}
            body = self.request("GET", path, params=query).json()
            results = body.get("results", [])
            for item in results:
                yield model.model_validate(item)
            page += 1
            if not results or page * page_size >= int(body.get("total", 0)):
                return


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
