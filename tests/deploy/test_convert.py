"""`hearth convert` turns LeRobot-layout π₀.₅ weights into a checkpoint the worker serves with identical actions."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from policy.checkpoints import save_lerobot_weights
from policy.inference import Pi05Policy
from tests.support import REPO_ROOT

HEARTH = [sys.executable, "-m", "agent.cli"]
# LeRobot's names for our modules (huggingface/lerobot src/lerobot/policies/pi05/modeling_pi05.py,
# `PaliGemmaWithExpertModel`); below these prefixes the names are the same on both sides. Written here, not taken
# from policy/checkpoints.py, so a wrong mapping there cannot cancel out in the round trip.
LEROBOT_PREFIXES = {
    "vision.": "paligemma_with_expert.paligemma.model.vision_tower.vision_model.",
    "projector.": "paligemma_with_expert.paligemma.model.multi_modal_projector.linear.",
    "vlm.layers.": "paligemma_with_expert.paligemma.model.language_model.layers.",
    "vlm.norm.": "paligemma_with_expert.paligemma.model.language_model.norm.",
    "vlm.embed_tokens.": "paligemma_with_expert.paligemma.lm_head.",  # tied: LeRobot stores the LM head
    "expert.": "paligemma_with_expert.gemma_expert.model.",
}
CAMERAS = ("base_cam", "wrist_cam")
NOISE = np.random.default_rng(7).normal(size=(50, 32)).astype(np.float32)


class Obs:
    def __init__(self, policy: Pi05Policy):
        rng = np.random.default_rng(3)
        self.images = {c: rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for c in CAMERAS}
        self.state = rng.normal(size=len(policy.metadata["state_names"])).astype(np.float32)


def lerobot_name(ours: str) -> str:
    for mine, theirs in LEROBOT_PREFIXES.items():
        if ours.startswith(mine):
            return theirs + ours.removeprefix(mine)
    return ours  # action_in_proj, action_out_proj, time_mlp_*, state_proj: the same name in both


def convert(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*HEARTH, "convert", *args],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        cwd=REPO_ROOT,
    )


def test_convert_lerobot_layout_reproduces_actions(tmp_path: Path) -> None:
    original = Pi05Policy.build_random("tiny", camera_names=CAMERAS, seed=5)
    source = tmp_path / "pi05-lerobot"
    weights = save_lerobot_weights(original.model, source, with_model_prefix=True)
    written = load_file(str(weights))
    ours = original.model.state_dict()
    assert set(written) == {"model." + lerobot_name(name) for name in ours}
    for name, tensor in ours.items():
        assert torch.equal(written["model." + lerobot_name(name)], tensor), name
    (source / "config.json").write_text(json.dumps({"type": "pi05", "chunk_size": 50}))
    original.norm_stats.save(tmp_path / "norm_stats.json")
    original.tokenizer.save(tmp_path / "tok")
    meta = original.metadata
    result = convert(
        str(source),
        str(tmp_path / "converted"),
        "--tokenizer",
        str(tmp_path / "tok"),
        "--cameras",
        ",".join(CAMERAS),
        "--state-names",
        ",".join(meta["state_names"]),
        "--action-names",
        ",".join(meta["action_names"]),
        "--norm-stats",
        str(tmp_path / "norm_stats.json"),
        "--config-preset",
        "tiny",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "wrote hearth checkpoint" in result.stdout
    converted = Pi05Policy.from_checkpoint(tmp_path / "converted", device="cpu")
    assert converted.metadata["camera_names"] == list(CAMERAS)
    obs = Obs(original)
    expected = original.act(obs, "put the can in the sink", noise=NOISE).actions
    np.testing.assert_array_equal(converted.act(obs, "put the can in the sink", noise=NOISE).actions, expected)


def test_convert_names_a_missing_tensor_and_missing_stats(tmp_path: Path) -> None:
    original = Pi05Policy.build_random("tiny", camera_names=CAMERAS, seed=5)
    source = tmp_path / "broken"
    weights = save_lerobot_weights(original.model, source)
    (source / "config.json").write_text(json.dumps({"type": "pi05"}))
    original.tokenizer.save(tmp_path / "tok")
    common = [
        "--tokenizer",
        str(tmp_path / "tok"),
        "--cameras",
        ",".join(CAMERAS),
        "--state-dim",
        "12",
        "--action-dim",
        "12",
        "--config-preset",
        "tiny",
    ]
    result = convert(str(source), str(tmp_path / "out"), *common)
    assert result.returncode == 2 and "norm stats" in result.stderr
    original.norm_stats.save(tmp_path / "norm_stats.json")
    state = load_file(str(weights))
    dropped = "time_mlp_in.weight"
    del state[dropped]
    save_file(state, str(weights))
    result = convert(str(source), str(tmp_path / "out"), *common, "--norm-stats", str(tmp_path / "norm_stats.json"))
    assert result.returncode == 2
    assert dropped in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
