"""``deploy/stead.service`` passes ``systemd-analyze verify`` (a parse check where systemd is not
installed) and keeps its hardening; settings given as files (systemd credentials, container
secrets) reach Stead; ``compose.yaml`` gives Stead its settings as secrets and its volume."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from stead import settings as settings_module
from stead.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "stead.service"


def unit_options() -> dict[str, list[str]]:
    """``Section.Key`` -> every value, in order (a unit file may repeat a key)."""
    options: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        options.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return options


def test_the_unit_verifies(tmp_path: Path) -> None:
    # ExecStart must name an existing program: this checkout's own stead.
    stead = Path(sys.executable).parent / "stead"
    unit = tmp_path / "stead.service"
    unit.write_text(UNIT.read_text().replace("/opt/stead/bin/stead", str(stead)))
    analyze = shutil.which("systemd-analyze")
    if analyze:
        done = subprocess.run(
            [analyze, "verify", str(unit)], capture_output=True, text=True, check=False
        )
        # verify exits 0 even for an unknown key or a bad value; it only warns on stderr
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip() == "", done.stderr
    else:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(unit.read_text())
        assert parser.sections() == ["Unit", "Service", "Install"]


def test_the_unit_is_hardened() -> None:
    options = unit_options()
    expected = {
        "Service.User": ["stead"],
        "Service.NoNewPrivileges": ["yes"],
        "Service.ProtectSystem": ["strict"],
        "Service.ReadWritePaths": ["/var/lib/stead"],
        "Service.PrivateTmp": ["yes"],
        "Service.ProtectHome": ["yes"],
        "Service.CapabilityBoundingSet": [""],
        "Service.Environment": ["STEAD_DATA_DIR=/var/lib/stead", "STEAD_ENVIRONMENT=production"],
        "Service.KillSignal": ["SIGTERM"],
    }
    for key, value in expected.items():
        assert options.get(key) == value, key
    # the keys are credentials, never in the environment
    assert not any("KEY" in line for line in options["Service.Environment"])
    assert {v.split(":")[0] for v in options["Service.LoadCredential"]} == {
        "stead_master_key",
        "stead_signing_key",
    }


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_settings_come_from_credential_files_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "stead_master_key").write_text("a2V5LWZyb20tYS1maWxl\n")
    (credentials / "STEAD_PUBLIC_URL").write_text("https://stead.example.com")
    (credentials / "stead_log_level").write_text("WARNING")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    monkeypatch.setattr(settings_module, "CONTAINER_SECRETS_DIR", tmp_path / "absent")
    monkeypatch.setenv("STEAD_LOG_LEVEL", "DEBUG")
    monkeypatch.delenv("STEAD_MASTER_KEY", raising=False)
    monkeypatch.delenv("STEAD_PUBLIC_URL", raising=False)

    settings = get_settings()
    assert settings.master_key.get_secret_value() == "a2V5LWZyb20tYS1maWxl"
    assert settings.public_url == "https://stead.example.com"
    assert settings.log_level == "DEBUG"
    assert "a2V5LWZyb20tYS1maWxl" not in repr(settings)


def test_container_secrets_are_settings_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    secrets_dir = tmp_path / "run-secrets"
    secrets_dir.mkdir()
    (secrets_dir / "stead_signing_key").write_text("s" * 64)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("STEAD_SIGNING_KEY", raising=False)
    monkeypatch.setattr(settings_module, "CONTAINER_SECRETS_DIR", secrets_dir)
    assert get_settings().signing_key.get_secret_value() == "s" * 64
    monkeypatch.setattr(settings_module, "CONTAINER_SECRETS_DIR", tmp_path / "absent")
    get_settings.cache_clear()
    assert get_settings().signing_key.get_secret_value() == ""


def test_compose_gives_stead_its_settings_as_secrets_and_its_volume() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    stead = compose["services"]["stead"]
    assert stead["image"] == "localhost/stead:latest"  # what `make image` builds
    assert stead["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert any(v.endswith(":/var/lib/stead") for v in stead["volumes"])
    assert 'VOLUME ["/var/lib/stead"]' in (ROOT / "Containerfile").read_text()
    # every secret is a setting of that name, and the keys and the database URL are among them
    fields = {f"stead_{name}" for name in Settings.model_fields}
    assert set(stead["secrets"]) <= fields
    assert {"stead_master_key", "stead_signing_key", "stead_database_url"} <= set(stead["secrets"])
    for name in [*stead["secrets"], *compose["services"]["postgres"]["secrets"]]:
        assert compose["secrets"][name]["file"].startswith("./")
    assert not any("KEY" in key or "PASSWORD" in key for key in stead["environment"])
