"""The Dockerfile, the compose example and the systemd units stay in step with the code:
the torch pin, every package copied, a non-root user, commands the CLI accepts. The image
itself is built where a Docker engine runs."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bot.cli import app
from tests.conftest import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
DEPLOY = REPO / "deploy"
IMAGE = "shadow-test:latest"


def _accepted(args: list[str]) -> None:
    """The CLI parses ``args`` (``--help`` stops it before anything runs)."""
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, f"shadow {shlex.join(args)}: {result.output}"


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # keys are case-sensitive
    unit.read(DEPLOY / name)
    return unit


def test_the_image_installs_the_pinned_cpu_torch() -> None:
    pin = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch"))
    assert f"ARG TORCH_VERSION={pin.removeprefix('torch==')}" in DOCKERFILE
    assert 'pip install --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"' in DOCKERFILE


def test_the_image_copies_every_package_and_runs_as_a_user_with_data_on_a_volume() -> None:
    packages = [p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]]
    for package in packages:
        assert f"COPY {package} ./{package}" in DOCKERFILE, f"the image does not copy the {package} package"
    user = re.findall(r"^USER (\S+)$", DOCKERFILE, re.MULTILINE)
    assert user == ["shadow"]  # set once, never root
    assert DOCKERFILE.index("USER shadow") > DOCKERFILE.index("pip install --editable")
    assert 'VOLUME ["/data"]' in DOCKERFILE and "WORKDIR /data" in DOCKERFILE
    assert "SHADOW_LEDGER__DB_PATH=/data/shadow.sqlite" in DOCKERFILE
    assert "/health" in DOCKERFILE.split("HEALTHCHECK", 1)[1].splitlines()[0]
    _accepted(re.search(r'^CMD \["(.+)"\]$', DOCKERFILE, re.MULTILINE).group(1).split('", "'))


def test_the_compose_example_keeps_data_on_a_volume_and_the_endpoints_on_loopback() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    service = compose["services"]["shadow"]
    assert "shadow-data:/data" in service["volumes"] and "shadow-data" in compose["volumes"]
    config = next(v for v in service["volumes"] if v.endswith(":/etc/shadow/shadow.toml:ro"))
    assert (DEPLOY / config.split(":")[0]).is_file()
    assert service["environment"]["SHADOW_CONFIG"] == "/etc/shadow/shadow.toml"
    assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    assert service["build"]["context"] == ".." and service["restart"] == "unless-stopped"
    _accepted(service["command"])


def test_the_example_config_loads() -> None:
    from config import load_settings

    settings = load_settings(DEPLOY / "shadow.toml")
    assert settings.feed.symbols == ["BTCUSDT", "ETHUSDT"] and settings.daemon.strategy == "registry"


@pytest.mark.parametrize("unit", ["shadow.service", "shadow-backup.service"])
def test_the_systemd_units_run_commands_the_cli_accepts(unit: str) -> None:
    service = _unit(unit)["Service"]
    assert service["User"] == "shadow" and service["WorkingDirectory"] == "/var/lib/shadow"
    assert service["Environment"] == "SHADOW_CONFIG=/etc/shadow/shadow.toml"
    binary, *args = shlex.split(service["ExecStart"])
    assert binary == "/opt/shadow/.venv/bin/shadow"
    _accepted(args)


def test_the_main_unit_restarts_after_any_failure_and_stops_with_sigterm() -> None:
    service = _unit("shadow.service")["Service"]
    assert (service["Restart"], service["KillSignal"]) == ("on-failure", "SIGTERM")
    assert "RestartPreventExitStatus" not in service  # exit 2 also means "exchange unreachable at start"
    assert "--http 127.0.0.1:9108" in service["ExecStart"] and "--log-format journal" in service["ExecStart"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    stub = tmp_path / "shadow"  # systemd checks that ExecStart is executable
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    for name in ("shadow.service", "shadow-backup.service", "shadow-backup.timer"):
        text = (DEPLOY / name).read_text().replace("/opt/shadow/.venv/bin/shadow", str(stub))
        (tmp_path / name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", *(str(p) for p in sorted(tmp_path.glob("shadow*.*")))],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def _docker_engine() -> str | None:
    """Why the image cannot be built here, or ``None`` when a Docker engine answers."""
    if shutil.which("docker") is None:
        return "no docker client on this machine"
    probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                           timeout=30)
    if probe.returncode != 0:
        return f"no Docker engine answers ({(probe.stderr.strip().splitlines() or ['docker info failed'])[-1]})"
    return None


@pytest.mark.timeout(1800)
def test_the_image_builds_and_runs_as_a_non_root_user() -> None:
    reason = _docker_engine()
    if reason:
        pytest.skip(f"building the Docker image needs a Docker engine: {reason}")
    subprocess.run(["docker", "build", "-t", IMAGE, str(REPO)], check=True, timeout=1700)
    uid = subprocess.run(["docker", "run", "--rm", "--entrypoint", "id", IMAGE, "-u"], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert uid != "0"
    cuda = subprocess.run(["docker", "run", "--rm", "--entrypoint", "python", IMAGE, "-c",
                           "import torch; print(torch.__version__, torch.version.cuda)"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert cuda[0].startswith("2.13.0") and cuda[1] == "None"  # the CPU build
    selftest = subprocess.run(["docker", "run", "--rm", IMAGE, "selftest"], capture_output=True, text=True)
    assert selftest.returncode == 0 and "completed successfully" in selftest.stdout, selftest.stderr
    doctor = subprocess.run(["docker", "run", "--rm", "--network", "none", IMAGE, "doctor", "--timeout", "1"],
                            capture_output=True, text=True)
    assert doctor.returncode == 1 and "FAIL exchange REST" in doctor.stdout  # no network: said, not crashed
