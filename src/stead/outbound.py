"""The outbound policy: where Stead may connect on a caller's behalf (docs/decisions.md,
"Outbound policy").

Every connection Stead opens because of a request (a warehouse's connection test, a secret
store's read, a git provider's API, a git remote's ``ls-remote`` or push) is checked here first,
by :class:`Policy`, for one of five kinds:

- ``snowflake``, ``redshift``: a warehouse's host (each its own, so that a host configured for
  one is not allowed for the other);
- ``secret_store``: AWS Secrets Manager, Vault, Azure Key Vault, GCP Secret Manager;
- ``git``: git provider APIs and git remotes;
- ``identity_provider``: the single sign-on provider (``STEAD_OIDC_ISSUER``'s host; the
  endpoints its discovery document names are added by :mod:`stead.identity.sso`).

A destination passes when (1) its scheme is allowed for the kind (git: ``https://``, and
``http://``, ``ssh://``, ``file://`` only when a setting turns them on), (2) its host matches one
of the kind's host patterns (the vendors' domains, the hosts an admin configured, and the extra
patterns of ``outbound_warehouse_hosts`` / ``outbound_git_hosts``), and (3) every address the
host resolves to is a public unicast address, or lies in a network of
``outbound_allowed_networks``. Refused without that setting: loopback (127.0.0.0/8, ::1),
private (RFC 1918, RFC 6598 shared space, IPv6 unique local fc00::/7), link-local
(169.254.0.0/16, fe80::/10, which hold the cloud metadata services 169.254.169.254 and
fd00:ec2::254), unspecified (0.0.0.0, ::), multicast and every other special-purpose address of
the IANA registries (RFC 6890); an IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as the
IPv4 address it carries. Classification is the standard library's :mod:`ipaddress`.

HTTP clients check each redirect too: :meth:`Policy.httpx_hook` for httpx,
:meth:`Policy.requests_hook` for requests-based SDKs, :meth:`Policy.urllib3_retry` for dulwich's
urllib3 pool. A refused destination is :class:`DestinationRefused`, a 400 naming the field.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx
import urllib3

from stead.errors import BadRequest
from stead.settings import Settings

Kind = Literal["snowflake", "redshift", "secret_store", "git", "identity_provider"]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]
"""``(host, port) -> addresses as text``; raises ``OSError`` when the name does not resolve."""

#: Host patterns every installation allows, per kind: the vendors' own domains.
VENDOR_HOSTS: Mapping[Kind, tuple[str, ...]] = {
    "snowflake": ("*.snowflakecomputing.com",),
    "redshift": ("*.redshift.amazonaws.com", "*.redshift-serverless.amazonaws.com"),
    "secret_store": (
        "*.amazonaws.com",
        "*.vault.azure.net",
        "login.microsoftonline.com",
        "*.googleapis.com",
    ),
    "git": (
        "github.com",
        "api.github.com",
        "gitlab.com",
        "dev.azure.com",
        "*.visualstudio.com",
        "bitbucket.org",
    ),
    "identity_provider": (),
}

#: Cloud instance metadata services, named as such in refusals (AWS, Azure, GCP, and AWS's IPv6
#: endpoint on Nitro instances).
METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


#: How refusals name each kind's purpose.
PURPOSE: Mapping[Kind, str] = {
    "snowflake": "Snowflake",
    "redshift": "Redshift",
    "secret_store": "a secret store",
    "git": "git",
    "identity_provider": "single sign-on",
}


class DestinationRefused(BadRequest):
    """400: the outbound policy does not allow this destination; the violation names the field
    that chose it and says which setting would allow it. Nothing was sent."""

    kind, title = "destination-refused", "Destination not allowed"


class HostUnresolved(DestinationRefused):
    """400: the host name does not resolve, so there is no address to allow."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to for a TCP connection on ``port``
    (``socket.getaddrinfo``).

    Raises:
        OSError: the name does not resolve (``socket.gaierror``).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_networks(value: str) -> tuple[Network, ...]:
    """The comma-separated networks or addresses of ``value`` (``127.0.0.0/8, ::1``).

    Raises:
        ValueError: an entry is not a network or address (``ipaddress.ip_network``, non-strict).
    """
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False)
        for part in value.split(",")
        if part.strip()
    )


def parse_hosts(value: str) -> tuple[str, ...]:
    """The comma-separated host patterns of ``value``, lower case: ``host``, ``*.domain`` (any
    name under ``domain``) or ``*`` (any host)."""
    return tuple(part.strip().lower().rstrip(".") for part in value.split(",") if part.strip())


def host_matches(host: str, pattern: str) -> bool:
    """Whether ``host`` matches ``pattern`` (see :func:`parse_hosts`); case-insensitive."""
    host = host.lower().rstrip(".")
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def unmapped(address: Address) -> Address:
    """The IPv4 address an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, RFC 4291 2.5.5.2)
    carries, else ``address`` itself."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def special_kind(address: Address) -> str | None:
    """Why ``address`` is not a public unicast address (``loopback``, ``cloud metadata``,
    ``link-local``, ``private``, ``unspecified``, ``multicast``, ``special-purpose``), or None
    when it is one (``ipaddress``'s ``is_global``)."""
    address = unmapped(address)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address in METADATA:
        return "cloud metadata"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "special-purpose"
    return None


def _ip_literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class Policy:
    """Which destinations each kind may reach (module docstring).

    Attributes:
        hosts: per kind, the host patterns allowed (see :func:`parse_hosts`).
        allowed_networks: networks whose addresses are allowed although special.
        git_schemes: URL schemes a git remote may use.
        resolver: how names become addresses; tests pass a stub so that no lookup leaves.
    """

    hosts: Mapping[Kind, tuple[str, ...]]
    allowed_networks: tuple[Network, ...] = ()
    git_schemes: frozenset[str] = frozenset({"https"})
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, resolver: Resolver = system_resolver) -> Policy:
        """The policy the ``outbound_*`` settings describe, with the host of every configured
        endpoint (``vault_addr``, ``github_enterprise_api_url``, ``snowflake_host`` ...) added
        to its kind: an admin chose it."""
        configured: dict[Kind, Iterable[str]] = {
            "snowflake": [settings.snowflake_host],
            "redshift": [],
            "secret_store": [
                settings.vault_addr,
                settings.aws_endpoint_url,
                settings.azure_vault_url,
                settings.azure_authority_host,
                settings.gcp_endpoint,
            ],
            "git": [
                settings.github_api_url,
                settings.github_enterprise_api_url,
                settings.gitlab_api_url,
                settings.azure_devops_url,
            ],
            "identity_provider": [settings.oidc_issuer],
        }
        extra: dict[Kind, tuple[str, ...]] = {
            "snowflake": parse_hosts(settings.outbound_warehouse_hosts),
            "redshift": parse_hosts(settings.outbound_warehouse_hosts),
            "secret_store": (),
            "git": parse_hosts(settings.outbound_git_hosts),
            "identity_provider": (),
        }
        hosts: dict[Kind, tuple[str, ...]] = {}
        for kind, vendor in VENDOR_HOSTS.items():
            own = (_host_of(value) for value in configured[kind] if value)
            hosts[kind] = vendor + extra[kind] + tuple(host for host in own if host)
        schemes = {"https"}
        for scheme, on in (
            ("http", settings.outbound_git_allow_http),
            ("ssh", settings.outbound_git_allow_ssh),
            ("file", settings.outbound_git_allow_file),
        ):
            if on:
                schemes.add(scheme)
        return cls(
            hosts=hosts,
            allowed_networks=parse_networks(settings.outbound_allowed_networks),
            git_schemes=frozenset(schemes),
            resolver=resolver,
        )

    def check_address(self, address: str, *, host: str, field: str) -> Address:
        """``address`` parsed, if it is public or in ``allowed_networks``.

        Raises:
            DestinationRefused: it is special (loopback, private ...) and not allowed.
        """
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
        reason = special_kind(parsed)
        if reason is None or any(unmapped(parsed) in net for net in self.allowed_networks):
            return parsed
        shown = host if host == address else f"{host} ({address})"
        raise DestinationRefused(
            f"Stead does not connect to {shown}: it is a {reason} address; an admin can allow "
            "it with STEAD_OUTBOUND_ALLOWED_NETWORKS",
            violations=[f"{field}: {reason} address not allowed"],
        )

    def check_host(self, kind: Kind, host: str, port: int, *, field: str) -> list[Address]:
        """Check ``host`` against ``kind``'s patterns, resolve it, and check every address
        (all must pass: a name with one public and one private address is refused).

        Returns:
            The addresses, in the resolver's order; connect to one of them to leave no second
            lookup between the check and the connection.

        Raises:
            DestinationRefused: the host matches no pattern, or an address is refused by
                :meth:`check_address`.
            HostUnresolved: the name does not resolve (a ``DestinationRefused``).
        """
        name = host.lower().rstrip(".").strip("[]")
        if not any(host_matches(name, pattern) for pattern in self.hosts[kind]):
            setting = {
                "snowflake": "STEAD_OUTBOUND_WAREHOUSE_HOSTS",
                "redshift": "STEAD_OUTBOUND_WAREHOUSE_HOSTS",
                "git": "STEAD_OUTBOUND_GIT_HOSTS",
                "secret_store": "the store's own address setting",
                "identity_provider": "STEAD_OIDC_ISSUER",
            }[kind]
            raise DestinationRefused(
                f"Stead does not connect to {host!r} for {PURPOSE[kind]}: the host is "
                f"not among the allowed ones; an admin can add it with {setting}",
                violations=[f"{field}: host {host!r} not allowed"],
            )
        literal = _ip_literal(name)
        if literal is not None:
            return [self.check_address(str(literal), host=host, field=field)]
        try:
            addresses = self.resolver(name, port)
        except OSError:
            addresses = []
        if not addresses:
            raise HostUnresolved(
                f"The host name {host!r} cannot be resolved",
                violations=[f"{field}: host {host!r} cannot be resolved"],
            )
        return [self.check_address(address, host=host, field=field) for address in addresses]

    def check_url(self, kind: Kind, url: str, *, field: str) -> None:
        """Check a URL's scheme (git: :attr:`git_schemes`; else ``https`` or ``http``), then its
        host as :meth:`check_host` does (default ports 443 / 80 / 22). ``file://`` URLs have no
        host and pass on their scheme alone.

        Raises:
            DestinationRefused: scheme, host or address refused.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        schemes = self.git_schemes if kind == "git" else frozenset({"https", "http"})
        if scheme not in schemes:
            setting = {
                "http": "STEAD_OUTBOUND_GIT_ALLOW_HTTP (the token would travel in clear text)",
                "ssh": "STEAD_OUTBOUND_GIT_ALLOW_SSH",
                "file": "STEAD_OUTBOUND_GIT_ALLOW_FILE",
            }.get(scheme, "no setting")
            raise DestinationRefused(
                f"Stead does not connect to {scheme}:// URLs for {PURPOSE[kind]}; "
                f"an admin can allow it with {setting}",
                violations=[f"{field}: {scheme}:// not allowed"],
            )
        if scheme == "file":
            return
        port = parts.port or {"https": 443, "http": 80, "ssh": 22}[scheme]
        self.check_host(kind, parts.hostname or "", port, field=field)

    def httpx_hook(self, kind: Kind, *, field: str) -> Callable[[httpx.Request], None]:
        """An httpx ``request`` event hook checking every request, redirects included, with
        :meth:`check_url` (``event_hooks={"request": [hook]}``)."""

        def hook(request: httpx.Request) -> None:
            self.check_url(kind, str(request.url), field=field)

        return hook

    def requests_hook(self, kind: Kind, *, field: str) -> Callable[..., Any]:
        """A requests ``response`` hook that checks a redirect's target with :meth:`check_url`
        before requests follows it (``session.hooks["response"].append(hook)``)."""

        def hook(response: Any, *args: Any, **kwargs: Any) -> Any:
            if response.is_redirect:
                target = urljoin(response.url, response.headers["location"])
                self.check_url(kind, target, field=field)
            return response

        return hook

    def urllib3_retry(self, kind: Kind, *, field: str, **options: Any) -> urllib3.Retry:
        """A ``urllib3.Retry`` (``options`` as its own) that checks every redirect's target with
        :meth:`check_url` before urllib3 follows it."""
        return _CheckedRetry(check=lambda url: self.check_url(kind, url, field=field), **options)


class _CheckedRetry(urllib3.Retry):
    """urllib3's retry state, calling ``check`` on each redirect target."""

    def __init__(self, *args: Any, check: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.check = check

    def new(self, **kw: Any) -> _CheckedRetry:
        kw.setdefault("check", self.check)
        retry = super().new(**kw)
        assert isinstance(retry, _CheckedRetry)
        return retry

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> urllib3.Retry:
        location = response.get_redirect_location() if response is not None else None
        if location:
            self.check(urljoin(url or "", location))
        return super().increment(method, url, response, *args, **kwargs)


def _host_of(value: str) -> str:
    """The host of a configured URL, or ``value`` itself when it is a bare host name."""
    if "://" not in value:
        return value.lower().rstrip(".")
    return (urlsplit(value).hostname or "").lower()
