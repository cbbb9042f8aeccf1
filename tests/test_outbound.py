"""The outbound policy on its own: addresses, names through a stub resolver, schemes, host
patterns and redirects. No name is looked up and no packet leaves the machine: every name goes
to the stub, and every refusal happens before a connection is opened."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import httpx
import pytest
import urllib3
from pydantic import ValidationError

from stead.outbound import DestinationRefused, Policy, special_kind
from stead.settings import Settings
from tests.support.outbound import Redirector, redirector  # noqa: F401 - fixture

REFUSED = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "100.64.0.1": "special-purpose",
    "169.254.10.20": "link-local",
    "fe80::1": "link-local",
    "169.254.169.254": "cloud metadata",
    "fd00:ec2::254": "cloud metadata",
    "::ffff:127.0.0.1": "loopback",
    "::ffff:10.0.0.1": "private",
    "::ffff:169.254.169.254": "cloud metadata",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "224.0.0.1": "multicast",
    "192.0.2.1": "private",  # TEST-NET-1: not globally reachable (IANA registry)
}
PUBLIC = ["8.8.8.8", "52.94.236.248", "2001:4860:4860::8888", "::ffff:8.8.8.8"]


class StubResolver:
    """Answers from a table and records what it was asked."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if host not in self.table:
            raise OSError("no such name")
        return self.table[host]


def policy(resolver: StubResolver, *, allowed: str = "", **settings: object) -> Policy:
    values = {"outbound_allowed_networks": allowed, "outbound_git_hosts": "*.example", **settings}
    return Policy.from_settings(Settings(**values), resolver=resolver)  # type: ignore[arg-type]


@pytest.mark.parametrize(("address", "reason"), sorted(REFUSED.items()))
def test_special_addresses_are_refused_as_literals_and_through_names(
    address: str, reason: str
) -> None:
    assert special_kind(ipaddress.ip_address(address)) == reason
    resolver = StubResolver({"repo.example": [address]})
    # Any host name: only the address decides.
    checks = policy(resolver, outbound_git_hosts="*")
    host = f"[{address}]" if ":" in address else address
    for url in (f"https://{host}/r.git", "https://repo.example/r.git"):
        with pytest.raises(DestinationRefused) as refused:
            checks.check_url("git", url, field="providerParameters.url")
        assert refused.value.status == 400
        assert refused.value.violations == [f"providerParameters.url: {reason} address not allowed"]
        assert "STEAD_OUTBOUND_ALLOWED_NETWORKS" in refused.value.detail
    assert resolver.asked == [("repo.example", 443)]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    resolver = StubResolver({"repo.example": [address]})
    checks = policy(resolver)
    (checked,) = checks.check_host("git", "repo.example", 443, field="f")
    assert checked == ipaddress.ip_address(address)


def test_a_name_with_one_refused_address_among_public_ones_is_refused() -> None:
    resolver = StubResolver({"repo.example": ["8.8.8.8", "10.0.0.7"]})
    with pytest.raises(DestinationRefused, match="private"):
        policy(resolver).check_url("git", "https://repo.example/x.git", field="url")


def test_an_admin_allows_networks_by_setting() -> None:
    resolver = StubResolver({"repo.example": ["10.20.30.40"], "meta.example": ["169.254.169.254"]})
    checks = policy(resolver, allowed="10.0.0.0/8, ::1", outbound_git_hosts="*")
    checks.check_url("git", "https://repo.example/x.git", field="url")
    checks.check_url("git", "https://[::1]/x.git", field="url")
    # Only what the setting names: the metadata service stays refused.
    with pytest.raises(DestinationRefused, match="cloud metadata"):
        checks.check_url("git", "https://meta.example/x.git", field="url")
    # An IPv4-mapped address is judged as the IPv4 address it carries.
    checks.check_url("git", "https://[::ffff:10.1.1.1]/x.git", field="url")
    with pytest.raises(DestinationRefused):
        checks.check_url("git", "https://[::ffff:127.0.0.1]/x.git", field="url")


def test_an_unknown_network_setting_is_refused_at_startup(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="outbound_allowed_networks"):
        Settings(data_dir=tmp_path, outbound_allowed_networks="10.0.0.0/8,intranet")


def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(DestinationRefused, match="cannot be resolved") as refused:
        policy(StubResolver({})).check_url("git", "https://gone.example/x.git", field="url")
    assert refused.value.violations == ["url: host 'gone.example' cannot be resolved"]


def test_host_patterns_per_kind() -> None:
    resolver = StubResolver(
        {
            name: ["52.94.236.248"]
            for name in (
                "acme-prod.snowflakecomputing.com",
                "c1.abc.eu-west-1.redshift.amazonaws.com",
                "wg.123.eu-west-1.redshift-serverless.amazonaws.com",
                "github.com",
                "gitlab.com",
                "dev.azure.com",
                "git.corp.example",
                "vault.corp.example",
                "evil.test",
                "snowflakecomputing.com.evil.test",
                "myvault.vault.azure.net",
                "acme.privatelink.corp.example",
                "secretsmanager.eu-west-1.amazonaws.com",
            )
        }
    )
    checks = policy(
        resolver,
        vault_addr="https://vault.corp.example:8200",
        snowflake_host="acme.privatelink.corp.example",
    )

    def allowed(kind: str, host: str) -> bool:
        try:
            checks.check_host(kind, host, 443, field="f")  # type: ignore[arg-type]
        except DestinationRefused:
            return False
        return True

    assert allowed("snowflake", "acme-prod.snowflakecomputing.com")
    assert allowed("redshift", "c1.abc.eu-west-1.redshift.amazonaws.com")
    assert allowed("redshift", "wg.123.eu-west-1.redshift-serverless.amazonaws.com")
    assert not allowed("redshift", "acme-prod.snowflakecomputing.com")
    assert not allowed("snowflake", "evil.test")
    assert not allowed("snowflake", "snowflakecomputing.com.evil.test")
    assert not allowed("redshift", "github.com")
    # A host configured for one warehouse is not allowed for the other.
    assert allowed("snowflake", "acme.privatelink.corp.example")
    assert not allowed("redshift", "acme.privatelink.corp.example")
    for host in ("github.com", "gitlab.com", "dev.azure.com", "git.corp.example"):
        assert allowed("git", host)
    assert not allowed("git", "evil.test")
    # The store hosts an admin configured, and the vendors' own.
    assert allowed("secret_store", "vault.corp.example")
    assert allowed("secret_store", "myvault.vault.azure.net")
    assert allowed("secret_store", "secretsmanager.eu-west-1.amazonaws.com")
    assert not allowed("secret_store", "evil.test")
    # Refused by its host pattern: the name was never looked up.
    assert ("evil.test", 443) not in resolver.asked


def test_git_schemes_are_off_unless_enabled() -> None:
    resolver = StubResolver({"git.example": ["8.8.8.8"]})
    checks = policy(resolver)
    for url, setting in (
        ("http://git.example/r.git", "STEAD_OUTBOUND_GIT_ALLOW_HTTP"),
        ("ssh://git@git.example/r.git", "STEAD_OUTBOUND_GIT_ALLOW_SSH"),
        ("file:///srv/git/r.git", "STEAD_OUTBOUND_GIT_ALLOW_FILE"),
        ("ftp://git.example/r.git", "no setting"),
    ):
        with pytest.raises(DestinationRefused, match=setting) as refused:
            checks.check_url("git", url, field="providerParameters.url")
        scheme = url.split(":")[0]
        assert refused.value.violations == [f"providerParameters.url: {scheme}:// not allowed"]
    enabled = policy(
        resolver,
        outbound_git_allow_http=True,
        outbound_git_allow_ssh=True,
        outbound_git_allow_file=True,
    )
    enabled.check_url("git", "http://git.example/r.git", field="url")
    enabled.check_url("git", "ssh://git@git.example/r.git", field="url")
    enabled.check_url("git", "file:///srv/git/r.git", field="url")
    assert ("git.example", 22) in resolver.asked and ("git.example", 80) in resolver.asked


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data/", "http://inside.example/admin"]
)
def test_redirects_to_refused_addresses_are_not_followed(
    redirector: Redirector,  # noqa: F811 - fixture
    target: str,
) -> None:
    redirector.target = target
    resolver = StubResolver({"inside.example": ["10.9.9.9"]})
    checks = policy(
        resolver,
        allowed="127.0.0.0/8",
        outbound_git_hosts="*",
        outbound_git_allow_http=True,
    )
    start = f"{redirector.url}/repo.git"
    hook = checks.httpx_hook("git", field="provider")
    with httpx.Client(follow_redirects=True, event_hooks={"request": [hook]}) as client:
        with pytest.raises(DestinationRefused) as refused:
            client.get(start)
        assert refused.value.violations[0].startswith("provider: ")
        assert "address not allowed" in refused.value.violations[0]
        # A redirect to an allowed place is followed.
        redirector.target = start
        with pytest.raises(httpx.TooManyRedirects):
            client.get(start)
    redirector.target = target
    retries = checks.urllib3_retry("git", field="url", total=None, redirect=5)
    with urllib3.PoolManager(retries=retries) as pool:
        with pytest.raises(DestinationRefused) as refused:
            pool.request("GET", start)
        assert refused.value.violations[0].startswith("url: ")
        redirector.target = start
        with pytest.raises(urllib3.exceptions.MaxRetryError):
            pool.request("GET", start)
