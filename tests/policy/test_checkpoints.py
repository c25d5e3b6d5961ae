"""Checkpoint layouts: hearth's own, LeRobot pi05 (both key styles), openpi-converted, HF PaliGemma export."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from policy.checkpoints import (
    EMBED_KEY,
    LM_HEAD_KEY,
    CheckpointError,
    detect_layout,
    export_paligemma,
    lerobot_key_shapes,
    load_lerobot_weights,
    load_pretrained,
    save_lerobot_weights,
    to_lerobot_state_dict,
)
from policy.inference import Pi05Policy
from policy.model.config import preset
from policy.model.pi05 import Pi05Batch, Pi05Model
from policy.normalize import NormStats
from tests.policy.model._util import randomize_


@dataclass
class Obs:
    images: dict
    state: np.ndarray


NAMES = {"camera_names": ["head", "wrist"], "state_names": ["a", "b", "c"], "action_names": ["a", "b", "c", "g"]}


@pytest.fixture(scope="module")
def policy() -> Pi05Policy:
    p = Pi05Policy.build_random("tiny", seed=3, **NAMES)
    randomize_(p.model, seed=5)
    p.norm_stats = NormStats.from_arrays(
        {
            "state": np.random.default_rng(0).normal(size=(50, 3)),
            "actions": np.random.default_rng(1).normal(size=(50, 4)),
        }
    )
    return p


def _obs() -> Obs:
    rng = np.random.default_rng(2)
    images = {name: rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for name in ("head", "wrist")}
    return Obs(images, np.array([0.1, -0.3, 0.7], np.float32))


NOISE = np.random.default_rng(4).normal(size=(50, 32)).astype(np.float32)


def _actions(p: Pi05Policy) -> np.ndarray:
    return p.act(_obs(), "put the cup in the sink", noise=NOISE).actions


def _lerobot_folder(policy: Pi05Policy, folder, with_model_prefix: bool):
    save_lerobot_weights(policy.model, folder, with_model_prefix=with_model_prefix)
    (folder / "config.json").write_text(json.dumps({"type": "pi05", "chunk_size": 50}))
    return folder


@pytest.mark.parametrize("with_model_prefix", [False, True])
def test_lerobot_layout_round_trip(policy: Pi05Policy, tmp_path, with_model_prefix: bool) -> None:
    folder = _lerobot_folder(policy, tmp_path / "lerobot", with_model_prefix)
    keys = set(load_file(str(folder / "model.safetensors")))
    prefix = "model." if with_model_prefix else ""
    assert prefix + LM_HEAD_KEY in keys and prefix + EMBED_KEY not in keys  # embedding stored only as lm_head
    assert prefix + "paligemma_with_expert.gemma_expert.model.layers.0.input_layernorm.dense.weight" in keys
    assert prefix + "paligemma_with_expert.paligemma.model.vision_tower.vision_model.post_layernorm.weight" in keys
    assert prefix + "time_mlp_in.weight" in keys
    assert detect_layout(folder) == "lerobot"

    loaded = Pi05Policy.from_pretrained(
        folder, policy.tokenizer, norm_stats=policy.norm_stats, config=policy.config, device="cpu", **NAMES
    )
    np.testing.assert_array_equal(_actions(loaded), _actions(policy))
    # and converted to hearth's format, it still reproduces the same actions
    loaded.save(tmp_path / "hearth")
    again = Pi05Policy.from_checkpoint(tmp_path / "hearth", device="cpu")
    np.testing.assert_array_equal(_actions(again), _actions(policy))


def test_missing_unexpected_and_misshaped_tensors_are_named(policy: Pi05Policy, tmp_path) -> None:
    state = to_lerobot_state_dict(policy.model)
    missing_key = "paligemma_with_expert.paligemma.model.language_model.layers.1.mlp.down_proj.weight"
    model = Pi05Model(policy.config)

    def attempt(tensors) -> str:
        save_file(tensors, str(tmp_path / "model.safetensors"))
        with pytest.raises(CheckpointError) as info:
            load_lerobot_weights(model, tmp_path)
        return str(info.value)

    message = attempt({k: v for k, v in state.items() if k != missing_key})
    assert "missing keys (1)" in message and "vlm.layers.1.mlp.down_proj.weight" in message
    message = attempt({**state, "paligemma_with_expert.extra.weight": torch.zeros(2)})
    assert "unexpected keys (1)" in message and "paligemma_with_expert.extra.weight" in message
    bad = dict(state)
    bad["action_in_proj.weight"] = torch.zeros(3, 3)
    message = attempt(bad)
    assert "shape mismatches" in message and "action_in_proj.weight: checkpoint (3, 3)" in message
    # no embedding under either alias: the embedding is named as missing
    message = attempt({k: v for k, v in state.items() if k != LM_HEAD_KEY})
    assert "vlm.embed_tokens.weight" in message


def test_openpi_converted_layout(policy: Pi05Policy, tmp_path) -> None:
    folder = tmp_path / "openpi"
    folder.mkdir()
    save_file(to_lerobot_state_dict(policy.model, embedding_as_lm_head=False), str(folder / "model.safetensors"))
    (folder / "config.json").write_text(
        json.dumps(
            {
                "action_dim": 32,
                "action_horizon": 50,
                "paligemma_variant": "gemma_2b",
                "action_expert_variant": "gemma_300m",
                "precision": "float32",
            }
        )
    )
    policy.norm_stats.save(folder / "assets" / "trossen" / "norm_stats.json")
    assert detect_layout(folder) == "openpi"
    model, stats = load_pretrained(folder, config=policy.config)
    np.testing.assert_allclose(stats["actions"].q99, policy.norm_stats["actions"].q99)
    for (name, a), b in zip(model.state_dict().items(), policy.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_pi05_key_table_matches_lerobot_pi05_base() -> None:
    """812 tensors with LeRobot's names and shapes (huggingface/lerobot src/lerobot/policies/pi05/modeling_pi05.py), built on the meta device."""
    with torch.device("meta"):
        model = Pi05Model(preset("pi05"))
    shapes = lerobot_key_shapes(model)
    assert len(shapes) == 812
    assert sum(int(np.prod(s)) for s in shapes.values()) == 3_616_757_520
    vision = "paligemma_with_expert.paligemma.model.vision_tower.vision_model."
    lm = "paligemma_with_expert.paligemma.model.language_model."
    expert = "paligemma_with_expert.gemma_expert."
    expected = {
        vision + "embeddings.patch_embedding.weight": (1152, 3, 14, 14),
        vision + "embeddings.position_embedding.weight": (256, 1152),
        vision + "encoder.layers.26.self_attn.q_proj.bias": (1152,),
        vision + "encoder.layers.0.mlp.fc1.weight": (4304, 1152),
        vision + "post_layernorm.weight": (1152,),
        "paligemma_with_expert.paligemma.model.multi_modal_projector.linear.weight": (2048, 1152),
        lm + "layers.17.self_attn.k_proj.weight": (256, 2048),
        lm + "layers.0.mlp.gate_proj.weight": (16384, 2048),
        lm + "layers.0.input_layernorm.weight": (2048,),
        lm + "norm.weight": (2048,),
        LM_HEAD_KEY: (257152, 2048),
        expert + "model.layers.0.self_attn.q_proj.weight": (2048, 1024),
        expert + "model.layers.0.self_attn.o_proj.weight": (1024, 2048),
        expert + "model.layers.17.post_attention_layernorm.dense.weight": (3072, 1024),
        expert + "model.norm.dense.bias": (3072,),
        expert + "lm_head.weight": (257152, 1024),
        "action_in_proj.weight": (1024, 32),
        "action_out_proj.weight": (32, 1024),
        "time_mlp_out.bias": (1024,),
    }
    for key, shape in expected.items():
        assert shapes.get(key) == shape, key
    assert EMBED_KEY not in shapes


def test_state_token_is_saved_and_configs_without_it_load_as_before(policy: Pi05Policy, tmp_path) -> None:
    import dataclasses

    from policy.checkpoints import load_weights

    policy.save(tmp_path / "with")
    assert "state_proj.weight" in load_file(str(tmp_path / "with" / "model.safetensors"))
    # a checkpoint written before the flag existed: no state_token in config.json, no state_proj weights
    older = Pi05Policy.build_random("tiny", seed=3, state_token=False, **NAMES)
    older.save(tmp_path / "older")
    config_path = tmp_path / "older" / "config.json"
    config = json.loads(config_path.read_text())
    del config["model"]["state_token"]
    config_path.write_text(json.dumps(config))
    loaded = Pi05Policy.from_checkpoint(tmp_path / "older", device="cpu")
    assert not loaded.config.state_token and loaded.model.state_proj is None
    np.testing.assert_array_equal(_actions(loaded), _actions(older))
    with pytest.raises(CheckpointError, match=r"missing keys \(2\): state_proj.bias, state_proj.weight"):
        load_weights(Pi05Model(dataclasses.replace(loaded.config, state_token=True)), tmp_path / "older")


def test_from_checkpoint_refuses_foreign_folders(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        Pi05Policy.from_checkpoint(tmp_path / "nope")
    (tmp_path / "config.json").write_text(json.dumps({"type": "pi05"}))
    with pytest.raises(CheckpointError, match="not a hearth checkpoint"):
        Pi05Policy.from_checkpoint(tmp_path)


def test_paligemma_export_loads_in_transformers_with_equal_logits(tmp_path) -> None:
    from transformers import PaliGemmaForConditionalGeneration

    torch.manual_seed(0)
    model = randomize_(Pi05Model(preset("tiny", vocab_size=300)), seed=6).eval()
    export_paligemma(model, tmp_path / "pg")
    assert json.loads((tmp_path / "pg" / "preprocessor_config.json").read_text())["size"] == {"height": 32, "width": 32}
    hf, info = PaliGemmaForConditionalGeneration.from_pretrained(tmp_path / "pg", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    hf.eval()
    n_img = model.config.vision.num_patches
    text = torch.randint(3, 300, (1, 9), generator=torch.Generator().manual_seed(1))
    image = torch.rand(1, 1, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    batch = Pi05Batch(image, torch.ones(1, 1, dtype=torch.bool), text, torch.ones_like(text, dtype=torch.bool))
    with torch.no_grad():
        hidden, _ = model.forward_joint(batch, None, None)
        ours = model.lm_logits(hidden[0, -1])
        input_ids = torch.cat([torch.full((1, n_img), model.config.vocab_size), text], dim=1)
        out = hf(
            input_ids=input_ids,
            pixel_values=image[:, 0],
            token_type_ids=torch.zeros_like(input_ids),
            attention_mask=torch.ones_like(input_ids),
        )
    assert (out.logits[0, -1] - ours).abs().max().item() <= 1e-4


def test_lerobot_processor_stats_are_read_and_missing_stats_refused(policy: Pi05Policy, tmp_path) -> None:
    folder = _lerobot_folder(policy, tmp_path / "trained", with_model_prefix=True)
    with pytest.raises(CheckpointError, match="no norm stats"):
        Pi05Policy.from_pretrained(folder, policy.tokenizer, config=policy.config, device="cpu", **NAMES)
    stats = {}
    for theirs, ours in (("observation.state", "state"), ("action", "actions")):
        for stat in ("mean", "std", "q01", "q99"):
            stats[f"{theirs}.{stat}"] = torch.from_numpy(getattr(policy.norm_stats[ours], stat).copy())
    save_file(stats, str(folder / "policy_preprocessor_step_3_normalizer_processor.safetensors"))
    loaded = Pi05Policy.from_pretrained(folder, policy.tokenizer, config=policy.config, device="cpu", **NAMES)
    np.testing.assert_allclose(loaded.norm_stats["actions"].q01, policy.norm_stats["actions"].q01)
    np.testing.assert_array_equal(_actions(loaded), _actions(policy))
