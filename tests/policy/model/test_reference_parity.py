"""Our SigLIP and Gemma blocks against transformers' SiglipVisionModel / GemmaModel with the same weights.

transformers is only the independent reference here; hearth's model never imports it.
"""

from __future__ import annotations

import copy

import torch
from transformers import GemmaConfig as HFGemmaConfig
from transformers import GemmaModel, SiglipVisionConfig, SiglipVisionModel

from policy.model.config import GemmaConfig, SiglipConfig
from policy.model.gemma import GemmaStack, joint_forward, make_attn_mask
from policy.model.siglip import SiglipVisionTower
from tests.policy.model._util import randomize_

TOL = 1e-5


def test_siglip_matches_transformers() -> None:
    ours_config = SiglipConfig(image_size=32, patch_size=8, width=48, depth=2, mlp_dim=96, num_heads=4)
    hf = SiglipVisionModel(
        SiglipVisionConfig(
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
            num_channels=3,
            layer_norm_eps=1e-6,
            hidden_act="gelu_pytorch_tanh",
            vision_use_head=False,
            attn_implementation="eager",
        )
    ).eval()
    randomize_(hf, seed=1, std=0.2)
    ours = SiglipVisionTower(ours_config).eval()
    state = {k.removeprefix("vision_model."): v for k, v in hf.state_dict().items()}
    ours.load_state_dict(state, strict=True)
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected = hf(pixel_values=images).last_hidden_state
        actual = ours(images)
    assert actual.shape == (3, 16, 48)
    assert (actual - expected).abs().max().item() <= TOL


def _hf_gemma() -> tuple[GemmaModel, GemmaStack]:
    config = GemmaConfig(width=64, depth=2, mlp_dim=128, num_heads=4, num_kv_heads=1, head_dim=16)
    hf = GemmaModel(
        HFGemmaConfig(
            vocab_size=97,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=16,
            rms_norm_eps=1e-6,
            hidden_act="gelu_pytorch_tanh",
            attn_implementation="eager",
        )
    ).eval()
    randomize_(hf, seed=2, std=0.1)
    ours = GemmaStack(config, vocab_size=97).eval()
    ours.load_state_dict(hf.state_dict(), strict=True)
    return hf, ours


def test_gemma_matches_transformers_causal() -> None:
    hf, ours = _hf_gemma()
    tokens = torch.randint(0, 97, (2, 10), generator=torch.Generator().manual_seed(3))
    pad = torch.ones(2, 10, dtype=torch.bool)
    with torch.no_grad():
        expected = hf(input_ids=tokens).last_hidden_state
        mask = make_attn_mask(pad, torch.ones(10, dtype=torch.bool))
        positions = torch.arange(10)[None].expand(2, 10)
        (actual,), _ = joint_forward([ours], [ours.embed(tokens)], [None], mask, positions)
    assert (actual - expected).abs().max().item() <= TOL


def test_gemma_matches_transformers_with_prefix_mask_and_padding() -> None:
    """π₀.₅'s block mask (bidirectional prefix, then a causal token) with right padding and cumsum positions.

    transformers takes the same mask as a 4-D additive mask; padded rows are undefined in both and skipped.
    """
    hf, ours = _hf_gemma()
    tokens = torch.randint(0, 97, (2, 10), generator=torch.Generator().manual_seed(4))
    pad = torch.ones(2, 10, dtype=torch.bool)
    pad[1, 7:] = False
    ar = torch.zeros(10, dtype=torch.bool)
    ar[6] = True
    mask = make_attn_mask(pad, ar)
    positions = torch.cumsum(pad.long(), dim=1) - 1
    additive = torch.where(mask, 0.0, torch.finfo(torch.float32).min)[:, None]
    with torch.no_grad():
        expected = hf(input_ids=tokens, attention_mask=additive, position_ids=positions).last_hidden_state
        (actual,), _ = joint_forward([ours], [ours.embed(tokens)], [None], mask, positions)
    assert (actual - expected)[pad].abs().max().item() <= TOL


def test_joint_layer_with_identical_experts_equals_one_expert() -> None:
    """Two experts with the same weights over a split sequence == one expert over the whole sequence."""
    config = GemmaConfig(width=32, depth=2, mlp_dim=64, num_heads=2, num_kv_heads=1, head_dim=16)
    first = randomize_(GemmaStack(config), seed=4, std=0.1).eval()
    second = copy.deepcopy(first)
    x = torch.randn(2, 9, 32, generator=torch.Generator().manual_seed(5))
    pad = torch.ones(2, 9, dtype=torch.bool)
    ar = torch.tensor([False] * 5 + [True, False, False, False])  # prefix block, then a suffix block
    mask = make_attn_mask(pad, ar)
    positions = torch.arange(9)[None].expand(2, 9)
    with torch.no_grad():
        (whole,), _ = joint_forward([first], [x], [None], mask, positions)
        (a, b), _ = joint_forward([first, second], [x[:, :5], x[:, 5:]], [None, None], mask, positions)
    assert (torch.cat([a, b], dim=1) - whole).abs().max().item() <= 1e-6
