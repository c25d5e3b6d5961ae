"""The `hearth` CLI as a user runs it: a real subprocess of the installed console script."""

import subprocess
import sys
from pathlib import Path

import yaml

HEARTH = str(Path(sys.executable).parent / "hearth")


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [HEARTH, *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def test_help_lists_every_registered_subcommand() -> None:
    result = run("--help")
    assert result.returncode == 0, result.stderr
    from agent.cli import SUBCOMMANDS, app

    registered = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert "config" in registered
    assert registered <= set(SUBCOMMANDS)
    for name in registered:
        assert name in result.stdout


def test_unknown_command_and_bad_flag_exit_nonzero() -> None:
    result = run("fly-to-the-moon")
    assert result.returncode != 0
    assert "No such command" in result.stderr
    result = run("--log-level", "loud", "config", "show")
    assert result.returncode != 0
    assert "unknown log level" in result.stderr


def test_config_show_applies_env_and_cli_overrides() -> None:
    result = run("config", "show", "local", "--set", "api.port=9123", env={"HEARTH_SYSTEM2__BACKEND": "coach-only"})
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["api"]["port"] == 9123
    assert shown["system2"]["backend"] == "coach-only"
    assert shown["robots"][0]["kind"] == "sim-kitchen"


def test_config_error_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("system2:\n  backend: telepathy\n")
    result = run("config", "show", str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {bad}: key 'system2.backend'")
    assert "Traceback" not in result.stderr
