"""A test-owned OpenID Connect provider at the protocol boundary: discovery (OpenID Connect
Discovery 1.0), a JWKS, and a token endpoint that checks the client secret (HTTP Basic, RFC 6749
section 2.3.1) and the PKCE verifier (RFC 7636, S256) and answers with an ID token signed by the
fake's own RSA key (joserfc). Tests choose the ID token's claims, break one on purpose (issuer,
expiry, nonce, signature ...) and then drive Stead's callback themselves.

The authorization endpoint is not served: a test reads ``state``, ``nonce`` and the code
challenge from the URL Stead sends the browser to (:meth:`OidcFake.authorize`), and plays the
browser coming back with a code.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from tests.support.rest_fake import Answer, Request, RestServer

CLIENT_ID = "stead-console"
CLIENT_SECRET = "canary-client-secret-7f3a"


@dataclass
class Authorization:
    """What Stead asked the provider for (the authorization URL's parameters)."""

    params: dict[str, str]

    @property
    def state(self) -> str:
        return self.params["state"]

    @property
    def nonce(self) -> str:
        return self.params["nonce"]


@dataclass
class OidcFake:
    """The fake provider: ``url`` is its issuer (``http://127.0.0.1:PORT``).

    Attributes:
        claims: extra ID token claims of the next token (``email``, ``email_verified``,
            ``groups`` ...); ``None`` values remove a claim.
        nonce: the nonce the next ID token carries (a test sets it from :meth:`authorize`).
        sign_with: the key that signs ID tokens (default: :attr:`key`, published in the JWKS).
        token_error: when set, the token endpoint answers 400 with this OAuth error.
        code_challenge: the challenge the token request's verifier must match.
        codes: every code the token endpoint was sent.
    """

    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    claims: dict[str, Any] = field(default_factory=dict)
    nonce: str = ""
    sign_with: RSAKey | None = None
    token_error: str | None = None
    code_challenge: str = ""
    codes: list[str] = field(default_factory=list)
    id_tokens: list[str] = field(default_factory=list)
    server: RestServer = field(init=False)
    discovery: dict[str, Any] = field(default_factory=dict)
    on_token: Callable[[Request], None] | None = None

    def __post_init__(self) -> None:
        self.server = RestServer(self._answer)
        self.url = self.server.url
        self.discovery = {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }

    def stop(self) -> None:
        """Stop serving."""
        self.server.stop()

    def requests_to(self, path: str) -> int:
        """How many requests the fake got for ``path``."""
        return sum(1 for r in self.server.requests if urlsplit(r.path).path == path)

    def authorize(self, location: str) -> Authorization:
        """Read the authorization URL Stead redirected to: remember its nonce and code
        challenge for the next token, and return its parameters."""
        parts = urlsplit(location)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{self.url}/authorize", location
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        assert params["response_type"] == "code" and params["client_id"] == CLIENT_ID
        assert params["code_challenge_method"] == "S256"
        self.nonce, self.code_challenge = params["nonce"], params["code_challenge"]
        return Authorization(params)

    def id_token(self, **overrides: Any) -> str:
        """An ID token with the usual claims (this issuer, audience the client, issued now,
        an hour valid, :attr:`nonce`), then :attr:`claims`, then ``overrides``."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": "subject-1",
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 3600,
            "nonce": self.nonce,
            **self.claims,
            **overrides,
        }
        claims = {k: v for k, v in claims.items() if v is not None}
        key = self.sign_with or self.key
        return jwt.encode({"alg": "RS256", "kid": key.kid or "k1"}, claims, key)

    def _answer(self, request: Request) -> Answer:
        path = urlsplit(request.path).path
        if path == "/.well-known/openid-configuration":
            return 200, {}, self.discovery
        if path == "/jwks":
            return 200, {}, KeySet([self.key]).as_dict(private=False)
        if path == "/token" and request.method == "POST":
            return self._token(request)
        return 404, {}, {"error": "not found"}

    def _token(self, request: Request) -> Answer:
        if self.on_token is not None:
            self.on_token(request)
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        self.codes.append(form.get("code", ""))
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return 401, {}, {"error": "invalid_client"}
        verifier = form.get("code_verifier", "")
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if form.get("grant_type") != "authorization_code" or challenge != self.code_challenge:
            return 400, {}, {"error": "invalid_grant"}
        if self.token_error:
            return 400, {}, {"error": self.token_error, "error_description": "no"}
        token = self.id_token()
        self.id_tokens.append(token)
        return (
            200,
            {},
            {"access_token": "canary-access-token", "token_type": "Bearer", "id_token": token},
        )
