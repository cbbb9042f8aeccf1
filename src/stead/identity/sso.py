"""Single sign-on to the console with an OpenID Connect provider (docs/sso.md).

The flow is OpenID Connect Core 1.0's authorization code flow, with PKCE (RFC 7636, ``S256``)
and a client secret at the token endpoint:

1. :func:`begin` makes a random ``state``, ``nonce`` and code verifier, keeps the state's hash,
   the nonce and the hash of the verifier in an :class:`~stead.identity.models.SsoRequest` row
   (ten minutes), and gives the verifier to the browser in the ``stead_sso`` cookie: only that
   browser can finish the login, and the verifier is stored nowhere.
2. The provider sends the browser back to ``<public URL>/console/sso/callback``; :func:`take`
   deletes the row of the ``state`` it brings (a state works once) and :func:`check` checks
   the cookie.
3. :meth:`Provider.redeem` exchanges the code (with the verifier and the client secret) and
   checks the ID token: signature against the provider's JWKS (fetched again once when the
   token names an unknown key), ``iss``, ``aud``/``azp``, ``exp``, ``iat`` and ``nonce``.
4. :func:`sign_in` finds or makes the user: email present and ``email_verified`` true (or,
   without it, Microsoft Entra ID's ``xms_edov``), its domain allowed, then the user with that
   email (a disabled one is refused), else the pending invitations for it, else a new user
   (only for an allowed domain); the group mapping is applied
   (:mod:`stead.identity.group_roles`).

The provider's discovery document (OpenID Connect Discovery 1.0) is read from
``<issuer>/.well-known/openid-configuration`` and kept :data:`DISCOVERY_TTL_SECONDS`. Every call
to the provider goes through the outbound policy (kind ``identity_provider``): the issuer's host,
and the hosts of the endpoints its discovery document names.

Every refusal is an :class:`SsoRefused` with a short ``reason`` that :func:`record_refusal`
audits as ``user.sso_refused``. No code, token, verifier or client secret is kept, logged, or
shown.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import (
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from stead import audit
from stead.db import utcnow
from stead.errors import AppError
from stead.identity import members
from stead.identity.actor import Actor
from stead.identity.group_roles import apply_group_roles
from stead.identity.models import Invitation, SsoIdentity, SsoRequest, User
from stead.identity.service import create_user, email_key, find_user, get_account, user_actor
from stead.outbound import DestinationRefused, HostUnresolved, Policy
from stead.scim.models import ScimUser
from stead.settings import Settings
from stead.tls import client_context

#: How long the provider's discovery document is used before it is read again.
DISCOVERY_TTL_SECONDS = 3600.0
#: How long a browser may take at the provider before coming back.
REQUEST_TTL = timedelta(minutes=10)
#: Sign-ins under way (started, neither back nor expired) one client address may have: each
#: is a row, made before anyone is authenticated. Generous, for many people behind one NAT.
MAX_PENDING_PER_ADDRESS = 100
#: Clock difference tolerated with the provider on ``exp`` and ``iat``, in seconds.
CLOCK_LEEWAY_SECONDS = 60
#: The cookie holding the PKCE code verifier (:func:`stead.console.web.cookie_name` adds
#: ``__Host-`` under https).
COOKIE = "stead_sso"
#: Signature algorithms accepted on ID tokens: asymmetric ones only (an HMAC one would be keyed
#: with the client secret, OpenID Connect Core 10.1; ``none`` is never accepted).
SIGNING_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


class SsoRefused(AppError):
    """A single sign-on login that does not go through; the page says ``detail``.

    Attributes:
        reason: a short code kept in the audit event (``state unknown or used``, ``bad
            signature``, ``email not verified`` ...).
        email / subject / user_id: what is known of the person, for the audit event.
    """

    status, kind, title = 400, "sso-refused", "Single sign-on refused"

    def __init__(
        self,
        detail: str,
        *,
        reason: str,
        status: int = 400,
        email: str | None = None,
        subject: str | None = None,
        user_id: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.email = email
        self.subject = subject
        self.user_id = user_id


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def redirect_uri(settings: Settings) -> str:
    """``<public URL>/console/sso/callback``: register it at the provider."""
    return f"{settings.public_url.rstrip('/')}/console/sso/callback"


class Provider:
    """The configured OpenID Connect provider, as a confidential client of it: its discovery
    document and key set, cached, and one HTTP client with its connections (thread-safe; one
    per app).

    Args:
        settings: ``oidc_*`` settings (single sign-on on), ``upstream_timeout_seconds`` for
            each call, the outbound policy's settings.
        policy: the outbound policy (default: the settings').
    """

    def __init__(self, settings: Settings, *, policy: Policy | None = None) -> None:
        self.settings = settings
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        self._policy = policy or Policy.from_settings(settings)
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._fetched_at = 0.0
        self._keys: KeySet | None = None
        #: What the provider may be reached at: the issuer's host, then also its endpoints'.
        self._allowed = self._policy
        self._http = httpx.Client(
            timeout=settings.upstream_timeout_seconds,
            follow_redirects=True,
            event_hooks={"request": [self._check]},
            verify=client_context(),
        )

    # --- talking to the provider ---------------------------------------------------------------

    def _check(self, request: httpx.Request) -> None:
        """Every request and redirect passes the outbound policy before it is sent."""
        self._allowed.check_url("identity_provider", str(request.url), field="STEAD_OIDC_ISSUER")

    def _get_json(self, url: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.get(url, **kwargs)
        except DestinationRefused as exc:
            raise _unreachable(what, exc.detail) from None
        except httpx.HTTPError as exc:
            raise _unreachable(what, type(exc).__name__) from None
        if response.status_code != 200:
            raise _unreachable(what, f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise _unreachable(what, "the answer is not a JSON object")
        return body

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (read again after :data:`DISCOVERY_TTL_SECONDS`).

        Raises:
            SsoRefused (502): it cannot be read, is not JSON, names another issuer (OpenID
                Connect Discovery 1.0 section 4.3), lacks an endpoint, or does not offer PKCE
                ``S256`` while it lists the methods it offers.
        """
        with self._lock:
            if self._metadata is not None and time.monotonic() - self._fetched_at < (
                DISCOVERY_TTL_SECONDS
            ):
                return self._metadata
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        data = self._get_json(url, what="discovery document")
        if str(data.get("issuer", "")).rstrip("/") != self.issuer.rstrip("/"):
            raise SsoRefused(
                f"The identity provider's discovery document names issuer "
                f"{str(data.get('issuer'))[:200]!r}, not STEAD_OIDC_ISSUER {self.issuer!r}",
                reason="discovery issuer mismatch",
                status=502,
            )
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(data.get(name), str):
                raise SsoRefused(
                    f"The identity provider's discovery document has no {name}",
                    reason="discovery incomplete",
                    status=502,
                )
        methods = data.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            raise SsoRefused(
                "The identity provider does not offer PKCE with S256 (RFC 7636)",
                reason="no pkce",
                status=502,
            )
        with self._lock:
            self._metadata, self._fetched_at, self._keys = data, time.monotonic(), None
            self._allowed = self._endpoint_policy(data)
        return data

    def _endpoint_policy(self, metadata: Mapping[str, Any]) -> Policy:
        """The outbound policy with the hosts of the provider's own endpoints added: the
        issuer's discovery document chose them (Google's token endpoint is on another host
        than its issuer); addresses are checked as for any destination."""
        hosts = tuple(
            (urlsplit(str(metadata[name])).hostname or "").lower()
            for name in ("token_endpoint", "jwks_uri", "userinfo_endpoint")
            if metadata.get(name)
        )
        allowed = dict(self._policy.hosts)
        allowed["identity_provider"] = allowed["identity_provider"] + hosts
        return replace(self._policy, hosts=allowed)

    def _key_set(self, metadata: Mapping[str, Any], *, refresh: bool) -> KeySet:
        with self._lock:
            if self._keys is not None and not refresh:
                return self._keys
        data = self._get_json(str(metadata["jwks_uri"]), what="key set")
        try:
            keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise _unreachable("key set", type(exc).__name__) from None
        with self._lock:
            self._keys = keys
        return keys

    # --- the flow ------------------------------------------------------------------------------

    def authorization_url(self, *, state: str, nonce: str, verifier: str) -> str:
        """Where to send the browser: the provider's authorization endpoint with
        ``response_type=code``, the client id, :func:`redirect_uri`, the scopes, ``state``,
        ``nonce`` and the PKCE ``S256`` challenge of ``verifier``.

        Raises:
            SsoRefused (502): the discovery document cannot be used (:meth:`metadata`).
        """
        metadata = self.metadata()
        url: str = prepare_grant_uri(
            metadata["authorization_endpoint"],
            self.client_id,
            "code",
            redirect_uri=redirect_uri(self.settings),
            scope=self.settings.oidc_scopes,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        return url

    def redeem(self, *, code: str, verifier: str, nonce: str) -> dict[str, Any]:
        """Exchange ``code`` at the token endpoint (RFC 6749 section 4.1.3, with the PKCE
        ``verifier`` and the client secret: ``client_secret_basic`` unless the provider only
        lists ``client_secret_post``) and return the ID token's claims, checked by
        :meth:`check_id_token`. When the ID token carries no ``email`` (or not the configured
        groups claim) the UserInfo endpoint's answer for the same ``sub`` adds the claims the
        ID token lacks (OpenID Connect Core section 5.3: some providers put only ``sub`` in
        the ID token).

        Raises:
            SsoRefused: the provider refuses the code (400), cannot be reached (502), or the
                ID token is refused (400).
        """
        metadata = self.metadata()
        methods = metadata.get("token_endpoint_auth_methods_supported") or []
        method = (
            "client_secret_post"
            if "client_secret_post" in methods and "client_secret_basic" not in methods
            else "client_secret_basic"
        )
        body = urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri(self.settings),
                "code_verifier": verifier,
            }
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        auth = ClientAuth(
            self.client_id, self.settings.oidc_client_secret.get_secret_value(), method
        )
        url, headers, body = auth.prepare("POST", str(metadata["token_endpoint"]), headers, body)
        try:
            response = self._http.post(url, content=body, headers=headers)
        except DestinationRefused as exc:
            raise _unreachable("token endpoint", exc.detail) from None
        except httpx.HTTPError as exc:
            raise _unreachable("token endpoint", type(exc).__name__) from None
        try:
            token = response.json()
        except ValueError:
            token = None
        if not isinstance(token, dict):
            raise _unreachable("token endpoint", f"HTTP {response.status_code}, not JSON")
        if response.status_code != 200 or "error" in token:
            error = _short(token.get("error")) or f"HTTP {response.status_code}"
            raise SsoRefused(
                f"The identity provider refused the login code ({error}); please log in again.",
                reason=f"token endpoint: {error}",
            )
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SsoRefused(
                "The identity provider sent no ID token.", reason="no id_token", status=502
            )
        access_token = token.get("access_token")
        claims = self.check_id_token(
            id_token,
            nonce=nonce,
            access_token=access_token if isinstance(access_token, str) else None,
        )
        wanted = ["email", self.settings.oidc_groups_claim]
        missing = [name for name in wanted if name and name not in claims]
        userinfo = metadata.get("userinfo_endpoint")
        if missing and isinstance(userinfo, str) and isinstance(access_token, str):
            info = self._get_json(
                userinfo,
                what="UserInfo endpoint",
                headers={"Authorization": f"Bearer {access_token}"},
            )
            if info.get("sub") == claims["sub"]:
                for name, value in info.items():
                    claims.setdefault(name, value)
        return claims

    def check_id_token(
        self, id_token: str, *, nonce: str, access_token: str | None
    ) -> dict[str, Any]:
        """The claims of ``id_token`` once checked (OpenID Connect Core section 3.1.3.7):
        signature by a key of the provider's JWKS with an algorithm of
        :data:`SIGNING_ALGORITHMS` (the JWKS read again once when the token names a key not in
        it), ``iss`` the discovery document's issuer, ``aud`` holding the client id (and
        ``azp`` it when present), ``exp`` not past and ``iat`` not ahead (each give or take
        :data:`CLOCK_LEEWAY_SECONDS`), ``nonce`` the one sent, ``at_hash`` the access token's.

        Raises:
            SsoRefused (400): any check fails; the reason names which.
        """
        metadata = self.metadata()
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in SIGNING_ALGORITHMS if alg in offered]
        try:
            try:
                decoded = jwt.decode(
                    id_token, self._key_set(metadata, refresh=False), algorithms=algorithms
                )
            except InvalidKeyIdError:
                decoded = jwt.decode(
                    id_token, self._key_set(metadata, refresh=True), algorithms=algorithms
                )
        except InvalidKeyIdError:
            raise _bad_token(
                "signed by a key the provider does not publish", "unknown key"
            ) from None
        except JoseError as exc:
            raise _bad_token(
                "its signature does not verify", f"bad signature: {exc.error}"
            ) from None
        except ValueError:
            raise _bad_token("it is not a signed JWT", "malformed") from None
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {
                "iss": {"essential": True, "value": metadata["issuer"]},
                "aud": {"essential": True, "value": self.client_id},
                "nonce": {"essential": True},
            },
            {"nonce": nonce, "client_id": self.client_id, "access_token": access_token},
        )
        try:
            claims.validate(leeway=CLOCK_LEEWAY_SECONDS)
        except ExpiredTokenError:
            raise _bad_token("it has expired", "expired") from None
        except (InvalidClaimError, MissingClaimError) as exc:
            claim = getattr(exc, "claim", "") or exc.error
            words = {
                "iss": ("it was issued by another issuer", "wrong issuer"),
                "aud": ("it is meant for another client", "wrong audience"),
                "nonce": ("it does not answer this login (nonce)", "nonce mismatch"),
                "iat": ("it was issued in the future", "issued in the future"),
            }
            detail, reason = words.get(claim, (f"its {claim} claim is wrong", f"bad {claim}"))
            raise _bad_token(detail, reason) from None
        except JoseError as exc:
            raise _bad_token(f"it is not valid ({exc.error})", f"invalid: {exc.error}") from None
        return dict(claims)


def _short(value: object) -> str:
    """A provider's error code, safe to show and keep: at most 64 printable ASCII characters."""
    text = value if isinstance(value, str) else ""
    return "".join(c for c in text if 0x20 < ord(c) < 0x7F)[:64]


def _unreachable(what: str, why: str) -> SsoRefused:
    return SsoRefused(
        f"Stead could not use the identity provider's {what} ({why}); try again later or ask "
        "an administrator.",
        reason=f"provider unreachable: {what} ({why})"[:300],
        status=502,
    )


def _bad_token(detail: str, reason: str) -> SsoRefused:
    return SsoRefused(f"The identity provider's ID token was refused: {detail}.", reason=reason)


def issuer_refused(settings: Settings) -> str | None:
    """Why the outbound policy (:mod:`stead.outbound`) would refuse ``settings.oidc_issuer``, or
    ``None``: checked at start-up so that an administrator hears of it before the first person
    tries to log in. No name is looked up (a start must not wait on DNS): only an issuer given as
    an IP address can be judged here; a name is checked when it is first used."""
    host = urlsplit(settings.oidc_issuer).hostname or ""

    def no_lookup(name: str, port: int) -> list[str]:
        return []

    try:
        Policy.from_settings(settings, resolver=no_lookup).check_host(
            "identity_provider", host, 443, field="STEAD_OIDC_ISSUER"
        )
    except HostUnresolved:
        return None
    except DestinationRefused as exc:
        return exc.detail
    return None


# --- the database side -------------------------------------------------------------------------


def begin(
    session: Session, *, provider: Provider, next_url: str, address: str | None
) -> tuple[str, str]:
    """Start a login from client ``address``: store an :class:`SsoRequest` (and delete expired
    ones).

    Returns:
        ``(authorization URL, cookie value)``: send the browser to the URL with the value in
        the :data:`COOKIE` cookie (it is the PKCE code verifier).

    Raises:
        SsoRefused (502): the provider's discovery document cannot be used.
        SsoRefused (429): the address has :data:`MAX_PENDING_PER_ADDRESS` sign-ins under way.
    """
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48)  # 64 characters: RFC 7636 asks for 43 to 128
    url = provider.authorization_url(state=state, nonce=nonce, verifier=verifier)
    now = utcnow()
    address = (address or "unknown")[:64]
    session.execute(delete(SsoRequest).where(SsoRequest.expires_at <= now))
    pending = session.scalar(
        select(func.count()).select_from(SsoRequest).where(SsoRequest.address == address)
    )
    if (pending or 0) >= MAX_PENDING_PER_ADDRESS:
        raise SsoRefused(
            "Too many logins are under way from your address; finish one or try again in "
            "a few minutes.",
            reason="too many sign-ins under way",
            status=429,
        )
    session.add(
        SsoRequest(
            state_hash=_digest(state),
            browser_hash=_digest(verifier),
            nonce=nonce,
            next_url=next_url,
            address=address,
            expires_at=now + REQUEST_TTL,
        )
    )
    session.flush()
    return url, verifier


@dataclass(frozen=True)
class Pending:
    """A login come back from the provider, as :func:`take` found it."""

    browser_hash: str
    nonce: str
    next_url: str
    expires_at: datetime


def take(session: Session, *, state: str | None) -> Pending:
    """Delete the login ``state`` names and return it: a state works once, whatever follows
    (commit before checking it with :func:`check`).

    Raises:
        SsoRefused (400): no state, or an unknown or used one.
    """
    if not state:
        raise SsoRefused(
            "The identity provider's answer has no state; please log in again.",
            reason="state missing",
        )
    row = session.execute(
        delete(SsoRequest)
        .where(SsoRequest.state_hash == _digest(state))
        .returning(
            SsoRequest.browser_hash,
            SsoRequest.nonce,
            SsoRequest.next_url,
            SsoRequest.expires_at,
        )
    ).first()
    if row is None:
        raise SsoRefused(
            "This login link is unknown or was used already; please log in again.",
            reason="state unknown or used",
        )
    browser_hash, nonce, next_url, expires_at = row
    return Pending(browser_hash=browser_hash, nonce=nonce, next_url=next_url, expires_at=expires_at)


def check(pending: Pending, *, cookie: str | None) -> str:
    """Check that ``pending`` has not expired and that this browser started it (``cookie``,
    the value of its :data:`COOKIE` cookie); return the PKCE code verifier (that value).

    Raises:
        SsoRefused (400): expired, or another browser.
    """
    if pending.expires_at <= utcnow():
        raise SsoRefused("This login took too long; please log in again.", reason="expired")
    if not cookie or not secrets.compare_digest(_digest(cookie), pending.browser_hash):
        raise SsoRefused(
            "This login was started in another browser; please log in again here.",
            reason="browser mismatch",
        )
    return cookie


def provider_error(error: str) -> SsoRefused:
    """The refusal of an answer that carries ``error`` (RFC 6749 section 4.1.2.1) instead of
    a code: the error code is shown and audited, its description (free text) is not."""
    code = _short(error) or "error"
    detail = (
        "You cancelled the login at the identity provider."
        if code == "access_denied"
        else f"The identity provider did not log you in ({code})."
    )
    return SsoRefused(detail, reason=f"provider error: {code}")


def _groups(claims: Mapping[str, Any], claim: str) -> list[str]:
    value = claims.get(claim) if claim else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def sign_in(
    session: Session,
    *,
    settings: Settings,
    claims: Mapping[str, Any],
    request_id: str | None,
    source_ip: str | None,
) -> User:
    """The user checked ID token ``claims`` sign in as, found, linked or made (module
    docstring, step 4), with the group mapping applied when ``oidc_groups_claim`` is set.

    Audited: ``user.created`` (``via: sso``) and ``invitation.accepted`` for a new user,
    ``user.sso_linked`` the first time a user signs in with this provider account, the
    mapping's changes, and ``user.sso_login``; ``last_login_at`` is set.

    Raises:
        SsoRefused: no email, email not verified (400); a domain not allowed, a disabled
            user, or no user, invitation nor allowed domain to make one with (403).
    """
    subject = str(claims["sub"])
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise SsoRefused(
            "The identity provider sent no email address; ask an administrator to release "
            "the email claim to Stead.",
            reason="no email",
            subject=subject,
        )
    # Microsoft Entra ID sends no email_verified for work accounts; its optional claim xms_edov
    # (the email's domain is verified by the tenant) stands in for it (docs/sso.md, Entra).
    verified = claims.get("email_verified")
    if verified is None:
        verified = claims.get("xms_edov")
    if verified is not True:
        raise SsoRefused(
            f"The identity provider has not verified {email}.",
            reason="email not verified",
            email=email,
            subject=subject,
        )
    domain = email.rsplit("@", 1)[1].lower()
    allowed = settings.oidc_allowed_domain_list
    user = find_user(session, email=email)
    # The identity provider is the authority for the users it provisioned by SCIM: they sign in
    # whatever their domain (docs/scim.md).
    provisioned = user is not None and session.get(ScimUser, user.id) is not None
    if allowed and domain not in allowed and not provisioned:
        raise SsoRefused(
            f"Accounts of {domain} may not log in to this Stead; ask your administrator to add "
            f"{domain} to the allowed domains.",
            reason="domain not allowed",
            status=403,
            email=email,
            subject=subject,
        )
    now = utcnow()
    groups = _groups(claims, settings.oidc_groups_claim)
    mapping = settings.group_roles if settings.oidc_groups_claim else None
    created = False
    invitations: Sequence[Invitation] = ()
    if user is not None and user.disabled_at is not None:
        raise SsoRefused(
            "Your Stead user is disabled; ask an administrator.",
            reason="user disabled",
            status=403,
            email=email,
            subject=subject,
            user_id=user.id,
        )
    if user is None:
        invitations = session.scalars(
            select(Invitation).where(
                Invitation.email_key == email_key(email),
                Invitation.accepted_at.is_(None),
                Invitation.expires_at > now,
            )
        ).all()
        if not invitations and not allowed:
            raise SsoRefused(
                f"There is no user for {email}; ask an administrator to invite you.",
                reason="no user",
                status=403,
                email=email,
                subject=subject,
            )
        name = claims.get("name")
        user = create_user(
            session,
            email=email,
            # No password: the user signs in by SSO (an admin's password reset gives one).
            password=None,
            display_name=name if isinstance(name, str) and name.strip() else None,
            role=(mapping.account_role(groups) if mapping else None) or "MEMBER",
        )
        created = True
    actor = user_actor(user).with_request(request_id=request_id, source_ip=source_ip)
    if created:
        audit.record(
            session,
            actor=actor,
            action="user.created",
            target_type="user",
            target_id=user.id,
            details={"email": user.email, "role": user.role, "via": "sso"},
        )
        for invitation in invitations:
            members.join(
                session, invitation=invitation, user=user, actor=actor, now=now, via="sso"
            )
    _link(
        session,
        user=user,
        issuer=str(claims["iss"]),
        subject=subject,
        actor=actor,
        now=now,
        audited=not created,
    )
    if mapping:
        apply_group_roles(session, user=user, groups=groups, mapping=mapping, actor=actor)
        actor = user_actor(user).with_request(request_id=request_id, source_ip=source_ip)
    user.last_login_at = now
    audit.record(
        session,
        actor=actor,
        action="user.sso_login",
        target_type="user",
        target_id=user.id,
        details={"email": user.email, "issuer": str(claims["iss"])},
    )
    session.flush()
    return user


def _link(
    session: Session,
    *,
    user: User,
    issuer: str,
    subject: str,
    actor: Actor,
    now: Any,
    audited: bool,
) -> None:
    """Record that ``user`` signs in as ``(issuer, subject)``; when that is new for them it is
    audited ``user.sso_linked`` (if ``audited``: a user made at this login is not linked, it is
    created). A provider account that signed in as another user before is moved to this one:
    the email decides, as the provider verified it."""
    identity = session.scalars(
        select(SsoIdentity).where(SsoIdentity.issuer == issuer, SsoIdentity.subject == subject)
    ).first()
    if identity is not None and identity.user_id == user.id:
        identity.last_login_at = now
        return
    previous = identity.user_id if identity is not None else None
    if identity is None:
        identity = SsoIdentity(issuer=issuer, subject=subject, user_id=user.id)
        session.add(identity)
    identity.user_id, identity.last_login_at = user.id, now
    session.flush()
    if not audited:
        return
    details: dict[str, Any] = {"email": user.email, "issuer": issuer, "subject": subject}
    if previous is not None:
        details["previousUserId"] = previous
    audit.record(
        session,
        actor=actor,
        action="user.sso_linked",
        target_type="user",
        target_id=user.id,
        details=details,
    )


def record_refusal(
    session: Session,
    *,
    refusal: SsoRefused,
    request_id: str | None,
    source_ip: str | None,
) -> None:
    """Audit ``refusal`` as ``user.sso_refused`` (its reason and what is known of the person):
    by the user when there is one, else by the provider account (actor type ``sso``)."""
    user = session.get(User, refusal.user_id) if refusal.user_id else None
    if user is None and refusal.email:
        user = find_user(session, email=refusal.email)
    if user is not None:
        actor = user_actor(user)
    else:
        actor = Actor(
            type="sso",
            id=(refusal.subject or "-")[:64],
            name=(refusal.email or "unknown")[:255],
            role="MEMBER",
            account_id=get_account(session).id,
        )
    details: dict[str, Any] = {"reason": refusal.reason}
    if refusal.email:
        details["email"] = refusal.email
    audit.record(
        session,
        actor=actor.with_request(request_id=request_id, source_ip=source_ip),
        action="user.sso_refused",
        target_type="user",
        target_id=user.id if user is not None else (refusal.email or "-"),
        details=details,
    )
