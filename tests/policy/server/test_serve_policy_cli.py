"""`hearth serve-policy` as a real process: prints its URL, serves a DROID-keyed openpi client, stops on SIGTERM."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import numpy as np
from openpi_client.websocket_client_policy import WebsocketClientPolicy

from tests.support import REPO_ROOT, spawn, wait_until


def test_serve_policy_random_tiny_droid_mapping(tmp_path: Path) -> None:
    hearth = str(Path(sys.executable).parent / "hearth")
    args = [hearth, "serve-policy", "--random-preset", "tiny", "--mapping", "droid", "--port", "0", "--api-key", "k1"]
    with spawn(args, tmp_path / "worker.log", env={"PYTHONPATH": str(REPO_ROOT)}) as process:
        found = wait_until(
            lambda: re.search(r"listening on ws://127\.0\.0\.1:(\d+)", process.log_text()),
            timeout=120,
            what="the worker to print its URL",
        )
        port = int(found.group(1))
        client = WebsocketClientPolicy("127.0.0.1", port, api_key="k1")
        try:
            metadata = client.get_server_metadata()
            assert metadata["mapping"] == "droid"
            rng = np.random.default_rng(0)
            reply = client.infer(
                {
                    "observation/exterior_image_1_left": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
                    "observation/wrist_image_left": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
                    "observation/joint_position": rng.normal(size=7),
                    "observation/gripper_position": np.array([0.3]),
                    "prompt": "put the marker in the cup",
                }
            )
        finally:
            client._ws.close()
        assert reply["actions"].shape == (metadata["action_horizon"], 8)  # DROID: 7 joint velocities + gripper
        process.signal_group(signal.SIGTERM)
        process.popen.wait(timeout=60)
        assert process.popen.returncode == 0, process.log_text()
        assert "policy worker stopped" in process.log_text()


def test_serve_policy_refuses_ambiguous_or_unknown_options(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agent.cli import app

    runner = CliRunner()

    def said(result, text: str) -> bool:  # typer draws errors in a box that wraps lines
        flat = " ".join(result.output.replace("│", " ").split())
        return result.exit_code == 2 and text in flat

    both = runner.invoke(app, ["serve-policy", "--checkpoint", "/nonexistent", "--random-preset", "tiny"])
    assert said(both, "exactly one of --checkpoint")
    neither = runner.invoke(app, ["serve-policy"])
    assert said(neither, "exactly one of --checkpoint")
    mapping = runner.invoke(app, ["serve-policy", "--random-preset", "tiny", "--mapping", "franka"])
    assert said(mapping, "unknown mapping 'franka'")
    missing = runner.invoke(app, ["serve-policy", "--checkpoint", "/nonexistent/ckpt"])
    assert said(missing, "/nonexistent/ckpt does not exist")
    (tmp_path / "empty").mkdir()
    not_a_checkpoint = runner.invoke(app, ["serve-policy", "--checkpoint", str(tmp_path / "empty")])
    assert said(not_a_checkpoint, "cannot load checkpoint")
