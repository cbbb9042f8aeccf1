"""``deploy/nginx.conf`` as shipped, in a real nginx in front of a real ``stead serve`` with
``STEAD_TRUSTED_PROXIES``: TLS, the HTTP redirect, the request id, and a client that cannot put
an address of its choice into the audit trail."""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from stead.demo import create_super_admin, start_server
from tests.support.postgres import free_port
from tests.support.processes import server_process
from tests.support.tls import self_signed

ROOT = Path(__file__).resolve().parents[2]
SPOOFED = "203.0.113.7"


def nginx_config(upstream_port: int, http_port: int, https_port: int, tmp: Path) -> str:
    """The shipped server blocks with this test's ports, certificate and files, wrapped in a
    main configuration for an nginx run in the foreground."""
    cert = self_signed(tmp)
    blocks = (ROOT / "deploy" / "nginx.conf").read_text()
    replacements = {
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{upstream_port};",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "/etc/ssl/certs/stead.example.com.pem": str(cert.cert),
        "/etc/ssl/private/stead.example.com.key": str(cert.key),
    }
    for old, new in replacements.items():
        assert blocks.count(old) == 1, old
        blocks = blocks.replace(old, new)
    blocks = re.sub(r"^\s*listen \[::\].*$", "", blocks, flags=re.MULTILINE)
    temp = tmp / "nginx-temp"
    temp.mkdir()
    return f"""
daemon off;
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {tmp / "nginx.pid"};
error_log {tmp / "nginx-error.log"} warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    {blocks}
}}
"""


@dataclass(frozen=True)
class Proxied:
    """nginx's HTTPS and HTTP URLs, Stead's own URL, and a SUPER_ADMIN client's credentials."""

    https: str
    http: str
    direct: str
    client_id: str
    client_secret: str


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[Proxied]:
    """Stead behind the shipped nginx configuration."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx is not installed (apt-get install nginx-light)")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db_url = f"sqlite:///{data_dir / 'stead.db'}"
    client_id, client_secret = create_super_admin(db_url)
    upstream, http_port, https_port = free_port(), free_port(), free_port()
    stead = start_server(
        data_dir,
        upstream,
        database_url=db_url,
        env={"STEAD_TRUSTED_PROXIES": "127.0.0.1", "STEAD_PUBLIC_URL": "https://localhost"},
    )
    config = tmp_path / "nginx.conf"
    config.write_text(nginx_config(upstream, http_port, https_port, tmp_path))
    checked = subprocess.run(
        [nginx, "-t", "-q", "-c", str(config)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    try:
        with server_process(
            [nginx, "-c", str(config)],
            ready_url=f"http://127.0.0.1:{http_port}/",
            log=tmp_path / "nginx.log",
        ):
            yield Proxied(
                f"https://127.0.0.1:{https_port}",
                f"http://127.0.0.1:{http_port}",
                f"http://127.0.0.1:{upstream}",
                client_id,
                client_secret,
            )
    finally:
        stead.terminate()
        stead.wait(timeout=20)


@pytest.mark.process
def test_nginx_terminates_tls_and_sets_the_forwarded_headers(
    proxied: Proxied, tmp_path: Path
) -> None:
    redirect = httpx.get(f"{proxied.http}/readyz")
    assert redirect.status_code == 301
    assert redirect.headers["location"].startswith("https://")

    trust = ssl.create_default_context(cafile=tmp_path / "cert.pem")
    with httpx.Client(base_url=proxied.https, verify=trust) as tls:
        ready = tls.get("/readyz")
        assert ready.status_code == 200
        assert ready.headers["strict-transport-security"] == "max-age=63072000"
        # nginx's $request_id (32 hex digits) is the request id Stead answers with
        assert re.fullmatch(r"[0-9a-f]{32}", ready.headers["x-request-id"])
        token = tls.post(
            "/oauth/dpc/token",
            data={
                "grant_type": "client_credentials",
                "client_id": proxied.client_id,
                "client_secret": proxied.client_secret,
            },
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": SPOOFED}
        created = tls.post(
            "/v1/projects",
            headers=headers,
            json={"name": "via-proxy", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"},
        )
        assert created.status_code == 201, created.text
        via_proxy = created.json()["projectId"]

    # Sent straight to Stead from a trusted address, the same header would be believed: the
    # proxy is what keeps the client's value out.
    created = httpx.post(
        f"{proxied.direct}/v1/projects",
        headers=headers,
        json={"name": "direct", "warehouse": "REDSHIFT", "agentDeploymentType": "HYBRID"},
    )
    assert created.status_code == 201, created.text
    direct = created.json()["projectId"]
    events = httpx.get(
        f"{proxied.direct}/v1/audit-events", params={"action": "project.created"}, headers=headers
    ).json()["results"]
    source = {event["target"]["id"]: event["sourceIp"] for event in events}
    assert source == {via_proxy: "127.0.0.1", direct: SPOOFED}
