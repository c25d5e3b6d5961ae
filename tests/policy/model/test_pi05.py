"""Pi05Model: sizes, flow-matching loss, KV-cached inference == uncached forward, greedy decoding, KI."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from policy.model.config import Pi05Config, preset
from policy.model.gemma import make_attn_mask
from policy.model.pi05 import Pi05Batch, Pi05Model, posemb_sincos, rtc_prefix_weights
from tests.policy.model._util import random_batch, randomize_


def _tiny(**overrides) -> Pi05Model:
    torch.manual_seed(0)
    return randomize_(Pi05Model(preset("tiny", **overrides)), seed=1).eval()


@pytest.fixture(scope="module")
def model() -> Pi05Model:
    return _tiny()


def _count(config: Pi05Config) -> int:
    return sum(p.numel() for p in Pi05Model(config).parameters())


def test_preset_sizes() -> None:
    tiny = _count(preset("tiny"))
    small = _count(preset("sim-small"))
    # the state token's projection (max_state_dim·W + W) took tiny from 388,352 to 389,408; sim-small is the
    # 96 px / 128-wide-VLM preset of the bundled checkpoint (was 7,316,768 at 64 px with a 256-wide VLM)
    assert tiny == 389_408
    assert small == 3_592_608
    for name, total in (("tiny", tiny), ("sim-small", small)):
        config = preset(name)
        assert config.state_token
        assert total - _count(preset(name, state_token=False)) == (config.max_state_dim + 1) * config.expert.width
    assert preset("sim-small").image_size <= 128
    with torch.device("meta"):
        full = Pi05Model(preset("pi05"))
    assert full.state_proj is None  # the released weights have no state token
    assert sum(p.numel() for p in full.parameters()) == 3_616_757_520


def test_config_round_trip_and_validation() -> None:
    config = preset("tiny", action_horizon=10, knowledge_insulation=True)
    again = Pi05Config.from_dict(config.to_dict())
    assert again == config
    with pytest.raises(ValueError, match="depth"):
        preset("tiny", expert={"depth": 3})
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
    with pytest.raises(ValueError, match="unknown Pi05Config"):
        Pi05Config.from_dict({**config.to_dict(), "bogus": 1})


def test_time_embedding_matches_openpi_formula() -> None:
    t = torch.tensor([0.0, 0.3, 1.0])
    emb = posemb_sincos(t, 8, 4e-3, 4.0)
    fraction = torch.linspace(0, 1, 4, dtype=torch.float64)
    period = 4e-3 * (4.0 / 4e-3) ** fraction
    angles = t.double()[:, None] / period * 2 * torch.pi
    torch.testing.assert_close(emb, torch.cat([angles.sin(), angles.cos()], -1).float())


def test_attention_mask_semantics() -> None:
    pad = torch.tensor([[True, True, True, False, True, True]])
    ar = torch.tensor([False, False, False, False, True, False])  # prefix of 4 (one padded), suffix block of 2
    mask = make_attn_mask(pad, ar)[0]
    assert mask[0, :3].all() and not mask[0, 3] and not mask[0, 4:].any()  # prefix never sees the suffix
    assert mask[4, :3].all() and mask[4, 4:].all() and not mask[4, 3]  # suffix sees valid prefix and itself
    assert not mask[3].any()  # a padded token sees nothing


def test_state_token_forms_pi0s_middle_block(model: Pi05Model) -> None:
    """prefix | state | actions: the state token sees only itself in the suffix, actions see the state and all actions."""
    pad, ar = model._suffix_masks(1, torch.device("cpu"))
    assert model.num_state_tokens == 1 and pad.shape == (1, 1 + model.config.action_horizon)
    mask = make_attn_mask(pad, ar)[0]
    assert mask[0, 0] and not mask[0, 1:].any()
    assert mask[1:].all()


def test_actions_follow_the_state_only_through_the_state_token(model: Pi05Model) -> None:
    batch = random_batch(model.config)
    x = torch.randn_like(batch.actions)
    t = torch.tensor([0.3, 0.7])
    flipped = dataclasses.replace(batch, state=-batch.state)
    plain = _tiny(state_token=False)
    with torch.no_grad():
        assert (model.velocity(batch, x, t) - model.velocity(flipped, x, t)).abs().max() > 1e-5  # float noise: ~1e-7
        assert torch.equal(plain.velocity(batch, x, t), plain.velocity(flipped, x, t))
        assert torch.equal(plain.velocity(batch, x, t), plain.velocity(dataclasses.replace(batch, state=None), x, t))
    with pytest.raises(ValueError, match="needs `state`"):
        model.velocity(dataclasses.replace(batch, state=None), x, t)
    with pytest.raises(ValueError, match="state must have shape"):
        model.sample_actions(dataclasses.replace(batch, state=batch.state[:, :8]))


def test_fixed_noise_is_deterministic(model: Pi05Model) -> None:
    batch = random_batch(model.config)
    noise = torch.randn(2, model.config.action_horizon, 32, generator=torch.Generator().manual_seed(7))
    a = model.sample_actions(batch, noise=noise)
    b = model.sample_actions(batch, noise=noise)
    assert torch.equal(a, b)
    c = model.sample_actions(batch, noise=noise + 0.1)
    assert (a - c).abs().max() > 1e-4


def test_kv_cached_sampling_equals_uncached_forward(model: Pi05Model) -> None:
    """Prefix cache + expert-only steps == one joint pass over prefix and suffix at every step."""
    batch = random_batch(model.config)
    noise = torch.randn(2, model.config.action_horizon, 32, generator=torch.Generator().manual_seed(8))
    cached = model.sample_actions(batch, noise=noise, num_steps=4)
    x = noise.clone()
    with torch.no_grad():
        for step in range(4):
            t = torch.full((2,), 1.0 - step / 4)
            x = x - 0.25 * model.velocity(batch, x, t)
    assert (cached - x).abs().max().item() <= 1e-5
    # a single step, both paths, at an arbitrary time
    kv, pad = model.prefix_cache(batch)
    t = torch.tensor([0.37, 0.81])
    with torch.no_grad():
        diff = (model.denoise_step(kv, pad, noise, t, batch.state) - model.velocity(batch, noise, t)).abs().max()
    assert diff.item() <= 1e-5


def test_absent_camera_and_padding_do_not_leak(model: Pi05Model) -> None:
    """Pixels of a masked camera and ids of padded tokens cannot change the actions."""
    batch = random_batch(model.config)
    noise = torch.randn(2, model.config.action_horizon, 32, generator=torch.Generator().manual_seed(9))
    base = model.sample_actions(batch, noise=noise)
    images = batch.images.clone()
    images[-1, -1] = -images[-1, -1]  # the masked camera of the last sample
    tokens = batch.tokens.clone()
    tokens[~batch.token_mask] = 5
    changed = dataclasses.replace(batch, images=images, tokens=tokens)
    assert (model.sample_actions(changed, noise=noise) - base).abs().max().item() <= 1e-5


def _greedy_uncached(model: Pi05Model, batch: Pi05Batch, steps: int) -> list[list[int]]:
    """Greedy decoding by re-running the full prefix with the generated tokens appended (causal blocks)."""
    out = []
    for i in range(batch.batch_size):
        n = int(batch.token_mask[i].sum())
        ids = batch.tokens[i, :n].tolist()
        generated: list[int] = []
        for _ in range(steps):
            tokens = torch.tensor([ids + generated])
            ar = torch.tensor([[False] * n + [True] * len(generated)])
            single = Pi05Batch(
                images=batch.images[i : i + 1],
                image_masks=batch.image_masks[i : i + 1],
                tokens=tokens,
                token_mask=torch.ones_like(tokens, dtype=torch.bool),
                token_ar_mask=ar,
            )
            with torch.no_grad():
                hidden, _ = model.forward_joint(single, None, None)
            next_id = int(model.lm_logits(hidden[0, -1]).argmax())
            if next_id == model.config.eos_token_id:
                break
            generated.append(next_id)
        out.append(generated)
    return out


TARGET = [11, 22, 33]


@pytest.fixture(scope="module")
def taught() -> tuple[Pi05Model, Pi05Batch]:
    """A tiny model trained by the CE loss alone to answer every prompt with TARGET + EOS."""
    model = _tiny()
    model.train()
    prompts = random_batch(model.config, batch_size=2, num_cameras=1, seed=3)
    b, length = prompts.tokens.shape
    total = length + len(TARGET) + 1
    tokens = torch.zeros(b, total, dtype=torch.long)
    mask = torch.zeros(b, total, dtype=torch.bool)
    loss_mask = torch.zeros_like(mask)
    for i in range(b):
        n = int(prompts.token_mask[i].sum())
        seq = prompts.tokens[i, :n].tolist() + TARGET + [model.config.eos_token_id]
        tokens[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = True
        loss_mask[i, n : len(seq)] = True
    train = Pi05Batch(
        prompts.images, prompts.image_masks, tokens, mask, token_ar_mask=loss_mask, token_loss_mask=loss_mask
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = model.compute_loss(train)["ce_loss"]
        if loss.item() < 0.02:
            break
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < 0.05, f"CE did not converge: {loss.item()}"
    return model.eval(), prompts


def test_generate_subtask_returns_the_taught_text_and_stops_at_eos(taught) -> None:
    model, prompts = taught
    assert model.generate_subtask(prompts, max_new_tokens=10) == [TARGET, TARGET]
    assert model.generate_subtask(prompts, max_new_tokens=2) == [TARGET[:2], TARGET[:2]]


def test_generate_subtask_cached_equals_uncached(taught) -> None:
    model, prompts = taught
    cached = model.generate_subtask(prompts, max_new_tokens=6, eos_id=-1)
    assert all(len(seq) == 6 for seq in cached)
    assert cached[0][:3] == TARGET
    eos = model.config.eos_token_id
    model.config.eos_token_id = -1
    try:
        assert cached == _greedy_uncached(model, prompts, 6)
    finally:
        model.config.eos_token_id = eos


def test_flow_loss_masks_padded_dims_and_steps(model: Pi05Model) -> None:
    batch = random_batch(model.config)
    is_pad = torch.zeros(2, model.config.action_horizon, dtype=torch.bool)
    is_pad[0, -10:] = True  # the episode ended 10 steps before the chunk did
    batch = dataclasses.replace(batch, action_is_pad=is_pad)
    noise = torch.randn_like(batch.actions)
    t = torch.tensor([0.5, 0.9])
    x_t = t[:, None, None] * noise + (1 - t[:, None, None]) * batch.actions
    with torch.no_grad():
        err = (model.velocity(batch, x_t, t) - (noise - batch.actions)) ** 2
        losses = model.compute_loss(batch, noise=noise, time=t)
        all_dims = model.compute_loss(dataclasses.replace(batch, action_mask=None), noise=noise, time=t)
    weight = (~is_pad)[:, :, None].float() * batch.action_mask[:, None, :].float()
    assert set(losses) == {"loss", "flow_loss", "ce_loss"}
    assert losses["ce_loss"].item() == 0.0
    assert losses["flow_loss"].item() == pytest.approx(((err * weight).sum() / weight.sum()).item(), rel=1e-5)
    weight_all = (~is_pad)[:, :, None].float().expand_as(err)
    assert all_dims["flow_loss"].item() == pytest.approx(((err * weight_all).sum() / weight_all.sum()).item(), rel=1e-5)


def test_flow_loss_is_mse_to_noise_minus_actions(model: Pi05Model) -> None:
    batch = random_batch(model.config)
    noise = torch.randn_like(batch.actions)
    t = torch.tensor([0.25, 0.75])
    x_t = t[:, None, None] * noise + (1 - t[:, None, None]) * batch.actions
    with torch.no_grad():
        v = model.velocity(batch, x_t, t)
        loss = model.compute_loss(batch, noise=noise, time=t)["flow_loss"]
    expected = ((v - (noise - batch.actions)) ** 2)[:, :, :7].mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def _ce_batch(model: Pi05Model) -> Pi05Batch:
    batch = random_batch(model.config)
    loss_mask = torch.zeros_like(batch.token_mask)
    ar = torch.zeros_like(batch.token_mask)
    for i in range(batch.batch_size):
        n = int(batch.token_mask[i].sum())
        loss_mask[i, n - 3 : n] = True  # the last three valid tokens are targets (e.g. a subtask + EOS)
        ar[i, n - 3 : n] = True
    return dataclasses.replace(batch, token_loss_mask=loss_mask, token_ar_mask=ar)


def test_actions_do_not_see_text_targets(model: Pi05Model) -> None:
    batch = _ce_batch(model)
    x = torch.randn_like(batch.actions)
    t = torch.tensor([0.5, 0.5])
    tokens = batch.tokens.clone()
    tokens[batch.token_loss_mask] = 7
    with torch.no_grad():
        a = model.velocity(batch, x, t)
        b = model.velocity(dataclasses.replace(batch, tokens=tokens), x, t)
    assert (a - b).abs().max().item() <= 1e-6


def test_one_training_step_lowers_the_loss() -> None:
    model = _tiny().train()
    batch = _ce_batch(model)
    noise = torch.randn_like(batch.actions, generator=None)
    time = torch.tensor([0.4, 0.8])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = model.compute_loss(batch, noise=noise, time=time)
    assert before["ce_loss"].item() > 0 and before["flow_loss"].item() > 0
    before["loss"].backward()
    optimizer.step()
    optimizer.zero_grad()
    after = model.compute_loss(batch, noise=noise, time=time)
    assert after["loss"].item() < before["loss"].item()
    assert after["flow_loss"].item() < before["flow_loss"].item()
    assert after["ce_loss"].item() < before["ce_loss"].item()


def _vlm_params(model: Pi05Model):
    return [(n, p) for n, p in model.named_parameters() if n.startswith(("vision.", "projector.", "vlm."))]


@pytest.mark.parametrize("insulate", [True, False])
def test_knowledge_insulation_blocks_flow_gradient_into_vlm(insulate: bool) -> None:
    model = _tiny(knowledge_insulation=insulate).train()
    batch = _ce_batch(model)
    losses = model.compute_loss(batch, time=torch.tensor([0.5, 0.6]))
    losses["flow_loss"].backward(retain_graph=True)
    vlm_grads = [p.grad for _, p in _vlm_params(model) if p.grad is not None and p.grad.abs().sum() > 0]
    expert_grad = sum(
        p.grad.abs().sum() for n, p in model.named_parameters() if n.startswith("expert.") and p.grad is not None
    )
    assert expert_grad > 0
    if insulate:
        assert vlm_grads == []
    else:
        assert len(vlm_grads) > 0
    # the text loss still trains the VLM either way
    model.zero_grad()
    losses["ce_loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for _, p in _vlm_params(model) if p is not None)


def test_rtc_weights_follow_the_paper() -> None:
    w = rtc_prefix_weights(torch.tensor([20]), torch.tensor([4]), 50)[0]
    assert torch.all(w[:4] == 1.0)
    assert torch.all(w[20:] == 0.0)
    assert torch.all(w[4:20] <= 1.0) and torch.all(w[4:19] > 0)
    assert torch.all(w[5:20] <= w[4:19])  # decays monotonically across the overlap


def test_rtc_guidance_pulls_the_chunk_toward_previous_actions(model: Pi05Model) -> None:
    batch = random_batch(model.config)
    noise = torch.randn(2, model.config.action_horizon, 32, generator=torch.Generator().manual_seed(11))
    free = model.sample_actions(batch, noise=noise)
    target = torch.full((2, 10, 32), 0.5)
    guided = model.sample_actions(batch, noise=noise, prev_actions=target, delay=3)
    assert (guided[:, :3] - 0.5).abs().mean() < 0.5 * (free[:, :3] - 0.5).abs().mean()
    with pytest.raises(ValueError, match="delay"):
        model.sample_actions(batch, noise=noise, prev_actions=target, delay=11)
