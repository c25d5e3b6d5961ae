"""One place for a deployment's state: every command resolves the same database and episode datasets.

Before, `hearth tokens create` wrote runs/hearth.db while `make demo` used runs/demo/hearth.db (the token was
refused with 401), `hearth episodes list` read runs/episodes while robots recorded into runs/episodes/<robot>,
and each `make demo` added another never-expiring "demo" token.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from typer.testing import CliRunner

from agent.cli import app
from agent.demo_token import ensure_demo_token
from agent.settings import load_deployment
from agent.store import Store
from tests.policy.data.synthetic import SyntheticEpisode, make_writer, write_episode


def test_home_places_database_and_episodes_unless_the_file_sets_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HEARTH_HOME", str(tmp_path))
    config = load_deployment("local")
    assert config.api.database_url == f"sqlite:///{tmp_path / 'hearth.db'}"
    assert config.episodes_root("sim-kitchen") == tmp_path / "episodes" / "sim-kitchen"
    assert config.logs_dir == tmp_path / "logs"
    explicit = load_deployment("local", ["api.database_url=sqlite:////elsewhere.db", "episodes_dir=/data/eps"])
    assert explicit.api.database_url == "sqlite:////elsewhere.db" and explicit.episodes_dir == Path("/data/eps")
    monkeypatch.delenv("HEARTH_HOME")
    default = load_deployment("local")
    assert default.api.database_url == "sqlite:///runs/hearth.db"
    assert default.episodes_root("sim-kitchen") == Path("runs/episodes/sim-kitchen")


def test_a_token_from_the_cli_is_the_one_the_api_checks(tmp_path: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(app, ["tokens", "create", "--role", "operator", "--quiet"], env={"HEARTH_HOME": str(tmp_path)})
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[-1]
    # the URL serve-api (and so `make demo`'s API, which exports HEARTH_HOME) opens
    api_database = load_deployment("local", [f"home={tmp_path}"]).api.database_url
    store = Store(api_database)
    try:
        assert store.verify_token(secret) is not None
    finally:
        store.close()


def test_episodes_list_reads_the_robot_dataset_the_api_records_into(tmp_path: Path) -> None:
    with make_writer(tmp_path / "episodes" / "sim-kitchen") as writer:
        write_episode(writer, SyntheticEpisode("put the can in the sink", 6, 0), "failed", False)
    listed = CliRunner().invoke(app, ["episodes", "list"], env={"HEARTH_HOME": str(tmp_path)})
    assert listed.exit_code == 0, listed.output
    assert "put the can in the sink" in listed.output and "1 episodes" in listed.output


def test_demo_token_is_reused_and_never_piles_up(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'hearth.db'}")
    try:
        for _ in range(2):  # what earlier versions left behind: one never-expiring "demo" token per start
            store.create_token("demo", "operator")
        secret_file = tmp_path / "demo-token"
        first, created = ensure_demo_token(store, secret_file)
        assert created and stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
        second, created_again = ensure_demo_token(store, secret_file)
        assert (second, created_again) == (first, False)
        active = [t for t in store.list_tokens(include_revoked=False) if t.name == "demo"]
        assert len(active) == 1 and store.verify_token(first) is not None
        store.revoke_token(active[0].id)  # revoked by someone: the next start makes a fresh one
        third, created_third = ensure_demo_token(store, secret_file)
        assert created_third and third != first and store.verify_token(third) is not None
    finally:
        store.close()
