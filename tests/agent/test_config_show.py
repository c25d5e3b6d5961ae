"""`hearth config show`: what a process would run with (orchestrator defaults included), secrets masked."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from agent.cli import app
from agent.redact import mask_url_password, mask_url_path


def _show(*args: str, env: dict[str, str] | None = None) -> dict:
    result = CliRunner().invoke(app, ["config", "show", *args], env=env)
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.output)


def test_local_shows_the_orchestrator_limits_and_the_state_under_home(tmp_path) -> None:
    shown = _show("local", env={"HEARTH_HOME": str(tmp_path)})
    assert shown["orchestrator"]["max_task_s"] == 600.0 and shown["orchestrator"]["worker_late_s"] == 2.0
    assert shown["orchestrator"]["every_k_chunks"] == shown["system2"]["every_k_chunks"]
    assert shown["api"]["database_url"] == f"sqlite:///{tmp_path / 'hearth.db'}"
    assert shown["episodes_dir"] == str(tmp_path / "episodes")


def test_secrets_are_masked() -> None:
    text = (
        CliRunner()
        .invoke(
            app,
            [
                "config",
                "show",
                "local",
                "--set",
                "policy.api_key=worker-key-123",
                "--set",
                "system2.openai_api_key=sk-abcdef",
                "--set",
                "api.database_url=postgresql://hearth:db-pass-9@db:5432/hearth",
                "--set",
                "api.webhooks=[{url: 'http://ha.local:8123/api/webhook/hook-id-77', secret: 'shared-secret-0123456789'}]",
                "--set",
                "robots=[{id: arm, kind: bridge, options: {url: 'ws://arm:8770', api_key: bridge-key-5}}]",
            ],
        )
        .output
    )
    for secret in (
        "worker-key-123",
        "sk-abcdef",
        "db-pass-9",
        "hook-id-77",
        "shared-secret-0123456789",
        "bridge-key-5",
    ):
        assert secret not in text, secret
    shown = yaml.safe_load(text)
    assert shown["policy"]["api_key"] == "***" and shown["system2"]["openai_api_key"] == "***"
    assert shown["api"]["database_url"] == "postgresql://hearth:***@db:5432/hearth"
    assert shown["api"]["webhooks"][0]["url"] == "http://ha.local:8123/***"
    assert shown["robots"][0]["options"] == {"url": "ws://arm:8770", "api_key": "***"}
    assert _show("local")["policy"]["api_key"] is None  # unset stays visibly unset


def test_url_masks_keep_what_identifies_the_endpoint() -> None:
    assert mask_url_password("sqlite:///runs/hearth.db") == "sqlite:///runs/hearth.db"
    assert mask_url_path("http://ha:8123") == "http://ha:8123"
