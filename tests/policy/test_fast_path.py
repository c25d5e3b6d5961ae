"""The fast inference path (policy/fast_path.py) computes what the eager model computes.

Run on CPU, where the same static-buffer code runs without graph capture: actions and subtask tokens of
`FastPi05` equal those of `Pi05Model.sample_actions` / `generate_subtask` on an unfused copy of the same weights,
across batch buckets (with padded rows), prompt buckets, camera counts (and an absent camera), RTC guidance and
the continuous state token; the static-cache decode equals the growing-cache decode token for token.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from policy.action_frame import ActionFrame
from policy.fast_path import FastPi05, ShapeKey, bucket_for, prompt_buckets
from policy.inference import Pi05Policy
from policy.model.config import preset
from policy.model.pi05 import Pi05Model
from tests.policy.model._util import random_batch, randomize_

TOLERANCE = 1e-5


def _model(**overrides) -> Pi05Model:
    torch.manual_seed(0)
    return randomize_(Pi05Model(preset("tiny", action_horizon=10, num_steps=4, **overrides)), seed=1).eval()


@pytest.fixture(scope="module")
def pair() -> tuple[Pi05Model, FastPi05]:
    """(eager model, fast path around a copy of the same weights): fusing never touches the reference."""
    eager = _model()
    return eager, FastPi05(copy.deepcopy(eager), eos_check_every=2, max_new_tokens=8)


def _noise(model: Pi05Model, batch_size: int, seed: int) -> torch.Tensor:
    config = model.config
    return torch.randn(
        batch_size, config.action_horizon, config.max_action_dim, generator=torch.Generator().manual_seed(seed)
    )


def test_buckets() -> None:
    assert prompt_buckets(48) == (16, 32, 48)
    assert prompt_buckets(200) == (16, 32, 64, 128, 200)
    assert bucket_for(3, (1, 2, 4, 8)) == 4
    assert bucket_for(8, (1, 2, 4, 8)) == 8
    with pytest.raises(ValueError, match="largest bucket"):
        bucket_for(9, (1, 2, 4, 8))


def test_fusing_keeps_the_state_dict_and_the_outputs() -> None:
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = random_batch(model.config)
    noise = _noise(model, 2, 0)
    expected = model.sample_actions(batch, noise=noise)
    model.fuse_projections()
    after = model.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], before[k]) for k in before)
    assert (model.sample_actions(batch, noise=noise) - expected).abs().max().item() <= TOLERANCE
    # a strict in-place load reaches the fused matrices through the parameter views
    model.load_state_dict({k: v * 0.5 if k.endswith("q_proj.weight") else v for k, v in before.items()}, strict=True)
    layer = model.vlm.layers[0].self_attn
    assert torch.equal(
        layer.qkv_weight[: layer.q_proj.weight.shape[0]], before["vlm.layers.0.self_attn.q_proj.weight"] * 0.5
    )


@pytest.mark.parametrize(
    ("batch_size", "cameras", "text_len"),
    [(1, 1, 8), (2, 2, 12), (3, 2, 30), (5, 3, 48)],  # buckets 1/2/4/8, prompt buckets 16/16/32/48
)
def test_actions_equal_eager(pair, batch_size: int, cameras: int, text_len: int) -> None:
    eager, fast = pair
    batch = random_batch(eager.config, batch_size=batch_size, num_cameras=cameras, seed=batch_size, text_len=text_len)
    noise = _noise(eager, batch_size, batch_size)
    expected = eager.sample_actions(batch, noise=noise, num_steps=4)
    actual = fast.sample_actions(batch, noise=noise)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() <= TOLERANCE


def test_rtc_guided_actions_equal_eager(pair) -> None:
    eager, fast = pair
    batch = random_batch(eager.config, batch_size=3, seed=4)
    noise = _noise(eager, 3, 4)
    prev = torch.randn(3, 7, eager.config.max_action_dim, generator=torch.Generator().manual_seed(5))
    lengths, delay = torch.tensor([7, 5, 0]), torch.tensor([2, 5, 0])  # the last sample has no previous chunk
    expected = eager.sample_actions(
        batch, noise=noise, num_steps=4, prev_actions=prev, delay=delay, prev_lengths=lengths
    )
    actual = fast.sample_actions(batch, noise=noise, prev_actions=prev, prev_lengths=lengths, delay=delay)
    assert (actual - expected).abs().max().item() <= TOLERANCE
    # guidance did act: the guided chunk differs from the unguided one
    assert (actual - fast.sample_actions(batch, noise=noise)).abs().max().item() > 1e-3


def test_batches_larger_than_the_largest_bucket_run_in_pieces() -> None:
    eager = _model()
    fast = FastPi05(copy.deepcopy(eager), batch_buckets=(1, 2))
    batch = random_batch(eager.config, batch_size=5, seed=6)
    noise = _noise(eager, 5, 6)
    expected = eager.sample_actions(batch, noise=noise, num_steps=4)
    assert (fast.sample_actions(batch, noise=noise) - expected).abs().max().item() <= TOLERANCE
    assert {key.batch for key in fast._chunks} == {1, 2}


def test_without_the_state_token() -> None:
    eager = _model(state_token=False)
    fast = FastPi05(copy.deepcopy(eager))
    batch = random_batch(eager.config, batch_size=2, seed=7)
    noise = _noise(eager, 2, 7)
    expected = eager.sample_actions(batch, noise=noise, num_steps=4)
    assert (fast.sample_actions(batch, noise=noise) - expected).abs().max().item() <= TOLERANCE


def test_the_state_token_is_read(pair) -> None:
    _, fast = pair
    batch = random_batch(fast.model.config, batch_size=2, seed=8)
    noise = _noise(fast.model, 2, 8)
    moved = copy.copy(batch)
    moved.state = batch.state + 0.5
    assert (fast.sample_actions(batch, noise=noise) - fast.sample_actions(moved, noise=noise)).abs().max().item() > 1e-4


def test_static_buffers_do_not_leak_between_calls(pair) -> None:
    """A shape reused after a different request gives what a fresh call gives (nothing stale is read)."""
    eager, fast = pair
    short = random_batch(eager.config, batch_size=2, seed=9, text_len=6)
    longer = random_batch(eager.config, batch_size=2, seed=10, text_len=14)
    noise = _noise(eager, 2, 9)
    first = fast.sample_actions(short, noise=noise)
    fast.sample_actions(longer, noise=noise)  # same ShapeKey (batch 2, 2 cameras, prompt bucket 16)
    assert torch.equal(fast.sample_actions(short, noise=noise), first)


@pytest.mark.parametrize(("batch_size", "text_len"), [(1, 6), (3, 20)])
def test_static_cache_decode_equals_growing_cache_decode(pair, batch_size: int, text_len: int) -> None:
    eager, fast = pair
    batch = random_batch(eager.config, batch_size=batch_size, seed=11 + batch_size, text_len=text_len)
    batch.image_masks[:] = True
    for max_new in (1, 5, 8):
        assert fast.generate_subtask(batch, max_new_tokens=max_new, eos_id=-1) == eager.generate_subtask(
            batch, max_new_tokens=max_new, eos_id=-1
        )
    # with an EOS: pick a token the model produces at step 3 of sample 0 and stop there
    free = eager.generate_subtask(batch, max_new_tokens=8, eos_id=-1)
    eos = free[0][3]
    assert fast.generate_subtask(batch, max_new_tokens=8, eos_id=eos) == eager.generate_subtask(
        batch, max_new_tokens=8, eos_id=eos
    )
    with pytest.raises(ValueError, match="at most 8"):
        fast.generate_subtask(batch, max_new_tokens=9)


def test_warmup_builds_every_shape() -> None:
    fast = FastPi05(_model(), batch_buckets=(1, 2), prompt_lengths=(16, 48))
    fast.warmup(num_cameras=2)
    assert set(fast._chunks) == {ShapeKey(b, 2, p, g) for b in (1, 2) for p in (16, 48) for g in (False, True)}
    assert set(fast._prefixes) == {ShapeKey(b, 2, p) for b in (1, 2) for p in (16, 48)}  # shared by both loops
    assert set(fast._decoders) == {ShapeKey(b, 2, p) for b in (1, 2) for p in (16, 48)}


def test_graphs_need_cuda() -> None:
    with pytest.raises(ValueError, match="CUDA"):
        FastPi05(_model(), graphs=True)


class _Obs:
    def __init__(self, seed: int, cameras: tuple[str, ...], state_dim: int) -> None:
        rng = np.random.default_rng(seed)
        self.images = {name: rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for name in cameras}
        self.state = rng.normal(size=state_dim).astype(np.float32)


def test_policy_fast_path_equals_eager_with_action_frame_rtc_and_save(tmp_path) -> None:
    """Pi05Policy end to end (robot units, relative action frame, prev_chunk/delay, System 2, save/load)."""
    names = ["arm", "gripper", "base_x", "base_y", "base_yaw"]
    kwargs = dict(
        preset="tiny", camera_names=("head", "wrist"), state_names=names, action_names=names, seed=3,
        action_horizon=10, num_steps=4,
    )  # fmt: skip
    eager = Pi05Policy.build_random(**kwargs, fast_path=False)
    fast = Pi05Policy.build_random(**kwargs, fast_path=True)
    assert eager.fast is None and fast.fast is not None and fast.model.projections_fused
    for policy in (eager, fast):
        policy.metadata["action_frame"] = {"relative": ["arm"], "base_pose": ["base_x", "base_y", "base_yaw"]}
        policy.action_frame = ActionFrame.from_metadata(policy.metadata)
    observations = [_Obs(seed, ("head", "wrist"), len(names)) for seed in range(3)]
    prompts = ["pick up the cup", "open the fridge door", "go"]
    noises = [np.random.default_rng(10 + i).normal(size=(10, 32)).astype(np.float32) for i in range(3)]
    plain = [c.actions for c in eager.act_batch(observations, prompts, noises=noises)]
    np.testing.assert_allclose(
        np.stack([c.actions for c in fast.act_batch(observations, prompts, noises=noises)]), np.stack(plain), atol=1e-5
    )
    prev = [plain[0][4:], None, plain[2][2:]]
    delays = [2, 0, 3]
    guided = [c.actions for c in eager.act_batch(observations, prompts, prev, delays, noises)]
    np.testing.assert_allclose(
        np.stack([c.actions for c in fast.act_batch(observations, prompts, prev, delays, noises)]),
        np.stack(guided),
        atol=1e-5,
    )
    assert eager.subtask_batch(observations, prompts, max_tokens=6) == fast.subtask_batch(
        observations, prompts, max_tokens=6
    )
    fast.save(tmp_path / "ckpt")  # fused weights are saved as plain, unshared tensors and load strictly
    loaded = Pi05Policy.from_checkpoint(tmp_path / "ckpt", device="cpu")
    assert loaded.fast is None
    np.testing.assert_allclose(loaded.act(observations[0], prompts[0], noise=noises[0]).actions, plain[0], atol=1e-5)
    assert fast.warmup(max_batch=3) >= 0.0 and eager.warmup() == 0.0
    assert {key.batch for key in fast.fast._chunks} == {1, 2, 4}  # up to the bucket that holds 3 requests


def test_a_model_with_a_state_token_refuses_a_batch_without_state(pair) -> None:
    _, fast = pair
    batch = random_batch(fast.model.config, batch_size=2, seed=12)
    batch.state = None
    with pytest.raises(ValueError, match="state token"):
        fast.sample_actions(batch)


def test_training_mode_reads_the_parameters_not_the_fused_copy() -> None:
    """Gradients must reach the named parameters even after fusing (a fused model switched back to training)."""
    model = _model()
    model.fuse_projections()
    model.train()
    loss = model.compute_loss(random_batch(model.config))["loss"]
    loss.backward()
    layer = model.vlm.layers[0]
    assert layer.self_attn.q_proj.weight.grad is not None and layer.mlp.gate_proj.weight.grad is not None
