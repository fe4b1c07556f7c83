"""docker-compose.yml: valid against the compose specification, and consistent where the
schema cannot look (dependencies, health checks, the variables it reads)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
BRIEF_SERVICES = {
    "postgres",
    "redis",
    "kafka",
    "minio",
    "backend",
    "frontend",
    "ml-text",
    "ml-sound",
}


def services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_valid_against_the_compose_spec() -> None:
    checker = shutil.which("check-jsonschema")
    assert checker, "check-jsonschema is a dev dependency"
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_of_the_brief_with_health_checks_and_real_dependencies() -> None:
    found = services()
    assert set(found) >= BRIEF_SERVICES
    for name, service in found.items():
        assert "healthcheck" in service, f"{name} has no health check"
        for target, condition in (service.get("depends_on") or {}).items():
            assert target in found, f"{name} depends on unknown {target}"
            assert condition["condition"] in (
                "service_healthy",
                "service_completed_successfully",
            ), name


def test_gpu_workers_reserve_a_gpu_and_cpu_variants_do_not() -> None:
    found = services()
    for name in ("ml-text", "ml-sound"):
        devices = found[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
        assert found[name]["profiles"] == ["gpu"]
        assert found[f"{name}-cpu"]["profiles"] == ["cpu"] and not found[f"{name}-cpu"]["deploy"]


def test_every_variable_it_reads_is_in_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    example = ROOT / ".env.example"
    defined = {
        line.split("=", 1)[0]
        for line in example.read_text().splitlines()
        if re.match(r"^[A-Z0-9_]+=", line)
    }
    assert used, "the compose file reads its settings from .env"
    assert used <= defined, f"missing from .env.example: {sorted(used - defined)}"
    assert "COMPOSE_PROFILES" in defined


def test_named_volumes_for_data_and_model_caches() -> None:
    data = yaml.safe_load(COMPOSE.read_text())
    assert {"postgres-data", "minio-data", "kafka-data", "hf-cache", "tts-cache"} <= set(
        data["volumes"]
    )


def _docker_engine() -> bool:
    docker = shutil.which("docker")
    return bool(docker) and subprocess.run([docker, "info"], capture_output=True).returncode == 0


@pytest.mark.skipif(
    not _docker_engine(),
    reason="no Docker engine on this machine: `docker compose config` needs one",
)
def test_docker_compose_config() -> None:
    subprocess.run(
        [
            "docker",
            "compose",
            "--env-file",
            str(ROOT / ".env.example"),
            "-f",
            str(COMPOSE),
            "config",
            "-q",
        ],
        check=True,
    )
