"""Pi05Policy end to end on a tiny random model: robot units in and out, RTC, System 2, bad input."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from policy.inference import Pi05Policy, resize_with_pad
from policy.normalize import NormStats
from policy.types import ActionChunk, PolicyInputError


@dataclass
class Obs:
    images: dict
    state: np.ndarray


@pytest.fixture(scope="module")
def policy() -> Pi05Policy:
    return Pi05Policy.build_random(
        "tiny",
        camera_names=("head", "wrist"),
        state_names=["x", "y", "z", "grip"],
        action_names=["dx", "dy", "dz", "grip", "base"],
        control_hz=10.0,
    )


def _obs(seed: int = 0, state=None) -> Obs:
    rng = np.random.default_rng(seed)
    return Obs(
        images={
            "head": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
            "wrist": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        },
        state=np.asarray(state if state is not None else rng.normal(size=4), dtype=np.float32),
    )


def _noise(policy: Pi05Policy, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(policy.config.action_horizon, 32)).astype(np.float32)


def test_metadata_per_contract(policy: Pi05Policy) -> None:
    meta = policy.metadata
    assert meta["camera_names"] == ["head", "wrist"]
    assert meta["state_names"] == ["x", "y", "z", "grip"]
    assert meta["action_names"] == ["dx", "dy", "dz", "grip", "base"]
    assert meta["action_dim"] == 5
    assert meta["action_horizon"] == 50
    assert meta["control_hz"] == 10.0
    assert meta["image_size"] == 32
    assert meta["preset"] == "tiny"


def test_act_returns_robot_units_and_is_deterministic_with_fixed_noise(policy: Pi05Policy) -> None:
    obs = _obs()
    chunk = policy.act(obs, "pick up the cup", noise=_noise(policy))
    assert isinstance(chunk, ActionChunk)
    assert chunk.actions.shape == (50, 5)
    assert chunk.action_names == ["dx", "dy", "dz", "grip", "base"]
    assert chunk.control_hz == 10.0
    assert chunk.subtask == "pick up the cup"
    again = policy.act(obs, "pick up the cup", noise=_noise(policy))
    np.testing.assert_array_equal(chunk.actions, again.actions)
    other = policy.act(obs, "pick up the cup", noise=_noise(policy, seed=1))
    assert np.abs(other.actions - chunk.actions).max() > 1e-3
    # the prompt and the images matter
    reworded = policy.act(obs, "open the drawer", noise=_noise(policy))
    assert np.abs(reworded.actions - chunk.actions).max() > 1e-4
    assert chunk.chunk_id != again.chunk_id


def test_unnormalization_uses_the_stats(policy: Pi05Policy) -> None:
    """Same model, stats scaled by 10 around an offset: outputs follow the quantile inverse exactly."""
    base = policy.act(_obs(), "wipe the table", noise=_noise(policy)).actions
    shifted = Pi05Policy(
        policy.model,
        policy.tokenizer,
        NormStats(
            {
                "state": policy.norm_stats["state"],
                "actions": type(policy.norm_stats["actions"])(
                    mean=np.zeros(5), std=np.ones(5), q01=np.full(5, 5.0), q99=np.full(5, 25.0)
                ),
            }
        ),
        {**policy.metadata},
        device="cpu",
    )
    out = shifted.act(_obs(), "wipe the table", noise=_noise(policy)).actions
    normalized = policy.norm_stats.normalize("actions", base)
    np.testing.assert_allclose(out, (normalized + 1) / 2 * (20 + 1e-6) + 5, rtol=1e-4, atol=1e-4)


def test_act_batch_matches_single_calls(policy: Pi05Policy) -> None:
    obs = [_obs(1), _obs(2)]
    noises = [_noise(policy, 3), _noise(policy, 4)]
    batch = policy.act_batch(obs, ["pick up the cup", "open the fridge door"], noises=noises)
    singles = [
        policy.act(o, p, noise=n)
        for o, p, n in zip(obs, ["pick up the cup", "open the fridge door"], noises, strict=True)
    ]
    for b, s in zip(batch, singles, strict=True):
        np.testing.assert_allclose(b.actions, s.actions, atol=1e-4)


def test_rtc_guidance_pulls_toward_previous_chunk(policy: Pi05Policy) -> None:
    obs = _obs()
    fresh = policy.act(obs, "pick up the cup", noise=_noise(policy, 5)).actions
    target = np.full((20, 5), 0.8, np.float32)  # previous chunk's unexecuted actions, robot units
    guided = policy.act(obs, "pick up the cup", prev_chunk=target, delay=4, noise=_noise(policy, 5)).actions
    before = np.abs(fresh[:4] - target[:4]).mean()
    after = np.abs(guided[:4] - target[:4]).mean()
    assert after < 0.5 * before
    # beyond the previous chunk the guidance weight is zero, but the chunk still changes (joint attention)
    assert guided.shape == (50, 5)
    with pytest.raises(PolicyInputError, match="delay"):
        policy.act(obs, "pick up the cup", prev_chunk=target, delay=30)
    with pytest.raises(PolicyInputError, match="prev_chunk"):
        policy.act(obs, "pick up the cup", prev_chunk=np.zeros((10, 3)), delay=0)


def test_subtask_decodes_text(policy: Pi05Policy) -> None:
    text = policy.subtask(_obs(), "put the cup in the sink", max_tokens=4)
    assert isinstance(text, str)
    ids = policy.model.generate_subtask(
        policy.make_batch([_obs()], ["put the cup in the sink"], system2=True),
        max_new_tokens=4,
        eos_id=policy.tokenizer.eos_id,
    )[0]
    assert len(ids) <= 4
    assert text == policy.tokenizer.decode(ids).strip()


def test_bad_input_is_refused_clearly(policy: Pi05Policy) -> None:
    obs = _obs()
    with pytest.raises(PolicyInputError, match="missing camera"):
        policy.act(Obs({"head": obs.images["head"]}, obs.state), "x")
    with pytest.raises(PolicyInputError, match="HxWx3"):
        policy.act(Obs({**obs.images, "wrist": np.zeros((32, 32), np.uint8)}, obs.state), "x")
    with pytest.raises(PolicyInputError, match="NaN"):
        policy.act(_obs(state=[0.0, np.nan, 0.0, 0.0]), "x")
    with pytest.raises(PolicyInputError, match="vector of 4"):
        policy.act(_obs(state=[0.0, 0.0]), "x")
    with pytest.raises(PolicyInputError, match="too long"):
        policy.act(obs, "pick up the cup " * 40)
    with pytest.raises(PolicyInputError, match="non-empty"):
        policy.act(obs, "   ")
    with pytest.raises(PolicyInputError, match="noise"):
        policy.act(obs, "x", noise=np.zeros((3, 3)))


def test_batch_carries_the_normalized_padded_state_and_actions_follow_it(policy: Pi05Policy) -> None:
    obs = _obs(3)
    batch = policy.make_batch([obs], ["open the fridge"])
    state = batch.state.numpy()
    assert state.shape == (1, policy.config.max_state_dim)
    np.testing.assert_array_equal(state[0, :4], policy.normalized_state(obs))
    assert not state[0, 4:].any()
    moved = _obs(3, state=obs.state + 0.5)  # same images, another state
    a = policy.act(obs, "open the fridge", noise=_noise(policy)).actions
    b = policy.act(moved, "open the fridge", noise=_noise(policy)).actions
    assert np.abs(a - b).max() > 1e-4


def test_save_and_reload_reproduces_actions(policy: Pi05Policy, tmp_path) -> None:
    policy.save(tmp_path / "ckpt")
    for name in ("model.safetensors", "config.json", "norm_stats.json", "tokenizer.json", "README.md"):
        assert (tmp_path / "ckpt" / name).is_file()
    loaded = Pi05Policy.from_checkpoint(tmp_path / "ckpt", device="cpu")
    assert loaded.metadata == policy.metadata
    a = policy.act(_obs(), "open the fridge", noise=_noise(policy)).actions
    b = loaded.act(_obs(), "open the fridge", noise=_noise(policy)).actions
    np.testing.assert_array_equal(a, b)


def test_resize_with_pad_keeps_aspect_and_pads_black() -> None:
    import torch

    image = torch.ones(3, 20, 40)  # wide white image in [-1, 1] space
    out = resize_with_pad(image, 32)
    assert out.shape == (3, 32, 32)
    assert torch.all(out[:, :8] == -1) and torch.all(out[:, 24:] == -1)  # 16 rows of content, centred
    assert torch.allclose(out[:, 8:24], torch.ones(3, 16, 32))


def test_bfloat16_policy_runs_close_to_float32(policy: Pi05Policy) -> None:
    """The CUDA default precision, checked on CPU: same chunk up to bf16 rounding."""
    import torch

    half = Pi05Policy(
        policy.model.__class__(policy.config),
        policy.tokenizer,
        policy.norm_stats,
        policy.metadata,
        device="cpu",
        dtype=torch.bfloat16,
    )
    half.model.load_state_dict({k: v.to(torch.bfloat16) for k, v in policy.model.state_dict().items()})
    assert half.model.dtype == torch.bfloat16
    a = policy.act(_obs(), "pick up the cup", noise=_noise(policy)).actions
    b = half.act(_obs(), "pick up the cup", noise=_noise(policy)).actions
    assert b.dtype == np.float32
    assert np.abs(a - b).max() < 0.1 * max(1.0, np.abs(a).max())
