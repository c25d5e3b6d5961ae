"""docker-compose.yml is valid against the Compose Specification's JSON schema and wires the services as documented.

No container engine runs here, so the file is checked structurally: schema, profiles, healthchecks, volumes, GPU
reservations, and that every `hearth` command it runs exists in our CLI.
"""

import json
from pathlib import Path

import jsonschema
import yaml

from tests.support import REPO_ROOT

SCHEMA = json.loads((Path(__file__).parent / "data" / "compose-spec.json").read_text())
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_compose_file_matches_the_compose_specification() -> None:
    jsonschema.validate(COMPOSE, SCHEMA)


def test_schema_rejects_a_broken_compose_file() -> None:
    broken = {"services": {"api": {"image": "x", "restart": 5, "unknown_field": True}}}
    validator = jsonschema.Draft7Validator(SCHEMA)
    messages = [e.message for e in validator.iter_errors(broken)]
    assert any("unknown_field" in m for m in messages)


def test_services_profiles_and_gpu_reservation() -> None:
    services = COMPOSE["services"]
    assert {"api", "policy-worker", "policy-worker-cpu", "console", "vllm"} <= set(services)
    assert services["policy-worker"]["profiles"] == ["gpu"]
    assert services["policy-worker-cpu"]["profiles"] == ["cpu"]
    assert services["policy-worker-cpu"]["networks"]["default"]["aliases"] == ["policy-worker"]
    devices = services["policy-worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert devices["capabilities"] == ["gpu"] and devices["driver"] == "nvidia"
    assert "profiles" not in services["api"] and "profiles" not in services["console"]
    for name, service in services.items():
        assert "healthcheck" in service, name
        assert service.get("restart") == "unless-stopped", name
    assert any(v.startswith("data:") for v in services["api"]["volumes"])
    assert set(COMPOSE["volumes"]) == {"data", "checkpoints", "pgdata"}


def test_fleet_profile_runs_ray_serve_on_the_gpus_and_postgres_for_the_api() -> None:
    services = COMPOSE["services"]
    fleet, postgres, api = services["policy-fleet"], services["postgres"], services["api"]
    assert fleet["profiles"] == ["fleet"] and postgres["profiles"] == ["fleet"]
    assert fleet["networks"]["default"]["aliases"] == ["policy-worker"]  # robots' default policy.url still works
    assert fleet["command"][:3] == ["hearth", "serve-policy", "--ray"] and "--gpus-per-replica" in fleet["command"]
    assert fleet["build"]["args"]["HEARTH_EXTRAS"] == "fleet"
    assert fleet["deploy"]["resources"]["reservations"]["devices"][0]["count"] == "all"
    assert api["depends_on"]["postgres"] == {"condition": "service_healthy", "required": False}
    assert api["environment"]["HEARTH_API__DATABASE_URL"] == "${HEARTH_DATABASE_URL:-sqlite:////data/hearth.db}"
    assert "pg_isready" in postgres["healthcheck"]["test"]


def test_configuration_is_environment_only_and_names_real_config_keys() -> None:
    from agent.settings import DeploymentConfig

    env = COMPOSE["services"]["api"]["environment"]
    for key in env:
        if not key.startswith("HEARTH_"):
            continue
        path = key[len("HEARTH_") :].lower().split("__")
        model = DeploymentConfig
        for part in path[:-1]:
            model = model.model_fields[part].annotation
        assert path[-1] in model.model_fields, key


def test_every_hearth_command_in_compose_exists() -> None:
    from agent.cli import SUBCOMMANDS

    for name, service in COMPOSE["services"].items():
        command = service.get("command") or []
        if command and command[0] == "hearth":
            assert command[1] in SUBCOMMANDS, (name, command)
    for dockerfile in ("docker/Dockerfile", "docker/Dockerfile.gpu"):
        text = (REPO_ROOT / dockerfile).read_text()
        assert "scripts/install.sh" in text and "torch==2.13.0" in text


def test_policy_worker_is_published_on_loopback_unless_asked() -> None:
    """The worker's key defaults to empty (auth off), so by default its port must not be reachable from the LAN."""
    import re

    for name in ("policy-worker", "policy-worker-cpu", "policy-fleet"):
        service = COMPOSE["services"][name]
        assert service["environment"]["HEARTH_POLICY_API_KEY"] == "${HEARTH_POLICY_API_KEY:-}"
        for port in service["ports"]:
            default_host = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(port)).rsplit(":", 2)[0]
            assert default_host == "127.0.0.1", (name, port)
