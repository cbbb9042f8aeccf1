"""The container image, built with ``make image`` and run with podman: the provisioning flow
over HTTP against it, then the container replaced by a new one on the same volume with every
object and hosted secret intact (docs/operations.md, "Container").

Slow (about two minutes): one test, so pytest-xdist runs it once. It fails when podman is
missing; a developer without podman sets ``STEAD_SKIP_IMAGE_TESTS=1`` to skip it.

There is no image registry here: the base image ``debian:bookworm-slim`` is made from Debian's
packages with mmdebstrap (python3 included) and kept, as a tar file in the user's cache
directory and in podman's image store, for later runs.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stead.backup import restore_backup
from stead.db import make_engine, make_sessionmaker, session_scope
from stead.demo import run_flow
from stead.secrets.store import attach_keyring, load_keyring, read_value
from stead.settings import Settings
from tests.support.postgres import free_port

pytestmark = [pytest.mark.image, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
IMAGE = "localhost/stead:test"
#: This host's kernel needs runc and cgroupfs (podman's defaults elsewhere are crun/systemd).
PODMAN = ["podman", "--runtime", "/usr/sbin/runc", "--cgroup-manager", "cgroupfs"]
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
SECRET_VALUE = "canary-container-secret-0c41d2"
PASSPHRASE = "canary-backup-passphrase-9e7d10"
IMAGE_UID = "10001"


def podman(*args: str, check: bool = True, timeout: float = 300, stdin: str = "") -> str:
    """Run podman; its standard output. Raises AssertionError with stderr when it fails."""
    done = subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False, input=stdin
    )
    if check:
        assert done.returncode == 0, f"podman {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


@pytest.fixture(scope="module")
def tools() -> None:
    """podman, runc and mmdebstrap, or a loud failure (a skip only when asked for)."""
    if os.environ.get("STEAD_SKIP_IMAGE_TESTS") == "1":
        pytest.skip("STEAD_SKIP_IMAGE_TESTS=1")
    missing = [tool for tool in ("podman", "runc", "mmdebstrap") if not shutil.which(tool)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not installed (apt-get install podman runc mmdebstrap "
            "uidmap slirp4netns); set STEAD_SKIP_IMAGE_TESTS=1 to skip the image test"
        )


def ensure_base_image() -> None:
    """``debian:bookworm-slim`` in podman's store, made with mmdebstrap once and cached."""
    if subprocess.run([*PODMAN, "image", "exists", BASE_IMAGE], check=False).returncode == 0:
        return
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stead"
    tar = cache / "debian-bookworm-base.tar"
    if not tar.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = tar.with_name(f"{tar.name}.{os.getpid()}")
        subprocess.run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                # Named, as the partial file's suffix (the pid) would otherwise make it a directory.
                "--format=tar",
                "--include=python3,python3-venv,ca-certificates",
                "bookworm",
                str(partial),
            ],
            check=True,
            timeout=600,
        )
        partial.rename(tar)
    podman("import", str(tar), BASE_IMAGE)


def build_image(context: Path) -> None:
    """``make image`` as a user runs it, with this host's podman flags; the image it replaces
    is removed (its layers shared with the new one stay, as the next build's cache)."""
    previous = podman("image", "inspect", "--format", "{{.Id}}", IMAGE, check=False)
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "image",
            f"VENV={Path(sys.executable).parent.parent}",
            f"IMAGE={IMAGE}",
            f"IMAGE_CONTEXT={context}",
            f"PODMAN={' '.join(PODMAN)}",
            f"PODMAN_BUILD_FLAGS=--network host {' '.join(ULIMITS)}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    if previous and podman("image", "inspect", "--format", "{{.Id}}", IMAGE) != previous:
        podman("rmi", previous, check=False)


def wait_ready(url: str, container: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        state = podman("inspect", "--format", "{{.State.Status}}", container)
        assert state == "running", podman("logs", container, check=False)
        time.sleep(0.3)
    raise AssertionError("not ready in 90 s:\n" + podman("logs", container, check=False))


class Names:
    """Podman objects of this test run (unique per process) and their removal."""

    def __init__(self) -> None:
        tag = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.volume = f"stead-test-data-{tag}"
        self.secret = f"stead-test-master-key-{tag}"
        self.containers: list[str] = []
        self.tag = tag

    def container(self) -> str:
        name = f"stead-test-{self.tag}-{len(self.containers)}"
        self.containers.append(name)
        return name

    def remove(self) -> None:
        for name in self.containers:
            podman("rm", "--force", "--time", "0", name, check=False)
        podman("volume", "rm", "--force", self.volume, check=False)
        podman("secret", "rm", self.secret, check=False)


@pytest.fixture
def names(tools: None) -> Iterator[Names]:
    made = Names()
    try:
        yield made
    finally:
        made.remove()


def snapshot(url: str, headers: dict[str, str]) -> dict[str, Any]:
    """Every object the flow made, read over HTTP: projects and, per project, its connections,
    environments, secret references, hosted secrets and repositories; agents and their
    credentials (sealed under the master key, so reading them back proves the key)."""
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:

        def get(path: str) -> Any:
            response = http.get(path, params={"size": 100})
            assert response.status_code == 200, (path, response.text)
            return response.json()

        state: dict[str, Any] = {"projects": get("/v1/projects"), "agents": get("/v1/agents")}
        for project in state["projects"]["results"]:
            base = f"/v1/projects/{project['id']}"
            for kind in (
                "data-platform-connections",
                "environments",
                "secret-references",
                "secrets",
                "repositories",
            ):
                state[f"{base}/{kind}"] = get(f"{base}/{kind}")
        for agent in state["agents"]["results"]:
            if agent["hosted"]:
                continue  # Stead's own agent has no readable credentials
            path = f"/v1/agents/{agent['agentId']}/credentials"
            state[path] = get(path)
    return state


def token(url: str, client: dict[str, str]) -> dict[str, str]:
    response = httpx.post(
        f"{url}/oauth/dpc/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client["clientId"],
            "client_secret": client["clientSecret"],
        },
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_image_serves_the_flow_and_a_new_container_keeps_every_object(
    names: Names, tmp_path: Path
) -> None:
    ensure_base_image()
    build_image(tmp_path / "context")
    inspected = json.loads(podman("image", "inspect", IMAGE))[0]
    assert inspected["Config"]["User"] == "stead"
    assert "/var/lib/stead" in inspected["Config"]["Volumes"]
    assert "/healthz" in " ".join(inspected["Healthcheck"]["Test"])

    master_key = base64.b64encode(secrets.token_bytes(32)).decode()
    key_file = tmp_path / "master.key"
    key_file.write_text(master_key + "\n")
    podman("secret", "create", names.secret, str(key_file))
    signing_key = secrets.token_hex(32)
    git_dir = tmp_path / "git"
    git_dir.mkdir(mode=0o755)
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def run_container() -> str:
        name = names.container()
        podman(
            "run",
            "--detach",
            "--name",
            name,
            *ULIMITS,
            "--publish",
            f"127.0.0.1:{port}:8080",
            "--volume",
            f"{names.volume}:/var/lib/stead",
            # the master key as a file (/run/secrets/stead_master_key), the signing key from
            # the environment: both ways of giving a setting
            "--secret",
            f"{names.secret},target=stead_master_key,uid={IMAGE_UID},mode=0400",
            "--env",
            f"STEAD_SIGNING_KEY={signing_key}",
            # the flow's repositories are bare repositories on this host (file:// remotes)
            "--volume",
            f"{git_dir}:{git_dir}:ro",
            "--env",
            "STEAD_OUTBOUND_GIT_ALLOW_FILE=true",
            IMAGE,
        )
        wait_ready(url, name)
        return name

    first = run_container()
    assert podman("exec", first, "id", "-u") == IMAGE_UID
    assert podman("healthcheck", "run", first, check=False) in ("", "healthy")
    client = json.loads(
        podman(
            "exec",
            first,
            "stead",
            "admin",
            "create-client",
            "--name",
            "ops",
            "--role",
            "SUPER_ADMIN",
            "--json",
        )
    )
    provisioned = run_flow(url, client["clientId"], client["clientSecret"], git_dir)
    headers = token(url, client)
    project_id = provisioned[0].project_id
    created = httpx.post(
        f"{url}/v1/projects/{project_id}/secrets",
        headers=headers,
        json={"name": "warehouse-password", "type": "PASSWORD", "value": SECRET_VALUE},
    )
    assert created.status_code == 201, created.text
    before = snapshot(url, headers)
    assert len(before["projects"]["results"]) == 2
    assert before[f"/v1/projects/{project_id}/repositories"]["repositoryName"]
    hosted = before[f"/v1/projects/{project_id}/secrets"]["results"]
    assert [s["name"] for s in hosted] == ["warehouse-password"]

    # A backup taken inside the container, where the keys come from a secret file and a variable.
    podman(
        "exec",
        "-i",
        first,
        "stead",
        "backup",
        "--passphrase-stdin",
        "/tmp/stead.backup",
        stdin=PASSPHRASE,
    )
    podman("cp", f"{first}:/tmp/stead.backup", str(tmp_path / "stead.backup"))

    # SIGTERM: uvicorn drains and the process exits 0.
    podman("stop", "--time", "30", first)
    assert podman("inspect", "--format", "{{.State.ExitCode}}", first) == "0"
    podman("rm", first)

    second = run_container()
    headers = token(url, client)  # the same API client: the database lived in the volume
    assert snapshot(url, headers) == before
    logs = podman("logs", second, check=False) + podman("logs", first, check=False)
    podman("stop", "--time", "30", second)
    for canary in (SECRET_VALUE, master_key, signing_key, client["clientSecret"], PASSPHRASE):
        assert canary not in logs

    # The hosted secret decrypts from the volume's database with the master key, and from the
    # backup restored elsewhere with the keys it holds.
    volume = Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}", names.volume))
    assert sorted(p.name for p in volume.iterdir() if not p.name.startswith("stead.db-")) == [
        "stead.db"
    ]
    database = f"sqlite:///{volume / 'stead.db'}"
    in_volume = Settings(data_dir=tmp_path / "none", database_url=database, master_key=master_key)
    assert hosted_secret(in_volume, project_id) == SECRET_VALUE
    restored = Settings(data_dir=tmp_path / "restored")
    restore_backup(restored, (tmp_path / "stead.backup").read_bytes(), passphrase=PASSPHRASE)
    assert hosted_secret(restored, project_id) == SECRET_VALUE
    assert (tmp_path / "restored" / "signing.key").read_text().strip() == signing_key


def hosted_secret(settings: Settings, project_id: str) -> str:
    """The flow's hosted secret, decrypted by Stead's store with the keys of ``settings``."""
    engine = make_engine(settings.effective_database_url)
    try:
        factory = make_sessionmaker(engine)
        attach_keyring(factory, load_keyring(settings))
        with session_scope(factory, write=False) as session:
            return read_value(session, project_id=project_id, name="warehouse-password")
    finally:
        engine.dispose()
