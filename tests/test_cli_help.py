"""What a person sees from `hearth ... --help` and from a bad flag: conventional help, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.commands.run import worker_line
from tests.support import REPO_ROOT

WIDE = {"COLUMNS": "200", "TERM": "dumb"}


def _help(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(
    "command", [(), ("run",), ("demo",), ("serve-policy",), ("episodes", "show"), ("tokens", "create")]
)
def test_help_has_no_type_tags_on_flags_or_braces_on_arguments(command: tuple[str, ...]) -> None:
    text = _help(*command)
    assert "<bool>" not in text
    assert "{" not in text.split("\n", 3)[1]  # the usage line


def test_run_usage_names_the_argument_in_capitals() -> None:
    assert "Usage: hearth run [OPTIONS] TASK" in _help("run")


@pytest.mark.parametrize("command", ["run", "demo", "serve-policy"])
def test_random_preset_lists_the_presets(command: str) -> None:
    line = next(line for line in _help(command).splitlines() if "--random-preset" in line)
    assert "tiny|sim-small|pi05" in line


def test_serve_policy_has_one_way_to_ask_for_random_weights() -> None:
    text = _help("serve-policy")
    assert "--random-preset" in text and "--preset " not in text and "--random " not in text


def test_unknown_preset_is_a_usage_error_naming_the_presets() -> None:
    result = CliRunner().invoke(app, ["demo", "--headless", "--random-preset", "huge"], env=WIDE)
    assert result.exit_code == 2
    assert "unknown preset 'huge'; choose one of tiny, sim-small, pi05" in result.output
    assert "Traceback" not in result.output


def test_unknown_robot_is_one_line_not_a_traceback(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "run", "put the can in the sink", "--robot", "sim-garage"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "HEARTH_HOME": str(tmp_path)},
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "sim-garage" in errors[0]


def test_worker_events_are_not_prefixed_twice() -> None:
    assert (
        worker_line("late", "policy worker late by 2300 ms (limit 2000 ms)")
        == "policy worker late by 2300 ms (limit 2000 ms)"
    )
    assert worker_line("ok", None) == "policy worker ok"
    assert worker_line("down", "connection refused") == "policy worker down: connection refused"


def test_serve_policy_no_fast_path_turns_the_cuda_fast_path_off(monkeypatch, tmp_path):
    """The flag reaches every policy the worker builds through HEARTH_FAST_PATH, which CUDA would otherwise default on."""
    import torch

    from policy.inference import FAST_PATH_ENV, fast_path_default

    monkeypatch.delenv(FAST_PATH_ENV, raising=False)
    assert fast_path_default(torch.device("cuda"))
    args = ["serve-policy", "--no-fast-path", "--checkpoint", str(tmp_path / "missing")]
    result = CliRunner().invoke(app, args, env=WIDE)
    assert result.exit_code != 0 and "does not exist" in result.output  # stopped before serving, after the switch
    assert os.environ[FAST_PATH_ENV] == "0"
    assert not fast_path_default(torch.device("cuda"))
