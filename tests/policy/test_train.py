"""Training: schedule, EMA, augmentation, LoRA, exact resume, and a real tiny training run on a real dataset."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from policy.training.augment import augment_images, wrist_flags
from policy.training.config import AugmentSettings, OptimizerSettings, TrainConfig
from policy.training.ema import ExponentialMovingAverage
from policy.training.lora import LoRALinear, apply_lora, merged_state_dict
from policy.training.metrics import CsvMetrics
from policy.training.optim import build_optimizer, build_scheduler, lr_factor


def test_schedule_warms_up_linearly_then_decays_by_cosine_to_the_floor() -> None:
    factors = [lr_factor(s, warmup_steps=10, decay_steps=110, final_ratio=0.1) for s in range(130)]
    assert factors[0] == pytest.approx(1 / 11)
    assert all(b > a for a, b in itertools.pairwise(factors[:11]))
    assert factors[10] == pytest.approx(1.0)
    assert factors[60] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factors[110] == pytest.approx(0.1) and factors[129] == pytest.approx(0.1)


def test_optimizer_skips_weight_decay_on_vectors_and_scheduler_drives_lr() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    settings = OptimizerSettings(lr=1e-3, warmup_steps=2, weight_decay=0.5)
    optimizer = build_optimizer(model, settings)
    decays = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert decays[id(model[0].weight)] == 0.5
    assert decays[id(model[0].bias)] == 0.0 and decays[id(model[1].weight)] == 0.0
    scheduler = build_scheduler(optimizer, settings, total_steps=10)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 / 3)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2e-3 / 3)


def test_ema_tracks_a_moving_average_of_trainable_weights_only() -> None:
    model = nn.Linear(2, 1)
    model.bias.requires_grad = False
    ema = ExponentialMovingAverage(model, decay=0.9)
    assert set(ema.shadow) == {"weight"}
    with torch.no_grad():
        model.weight.fill_(1.0)
        start = ema.shadow["weight"].clone()
    ema.update(model)
    assert torch.allclose(ema.shadow["weight"], 0.9 * start + 0.1)
    averaged = ema.averaged_state(model)
    assert torch.equal(averaged["weight"], ema.shadow["weight"]) and torch.equal(averaged["bias"], model.bias)
    with pytest.raises(ValueError, match="does not match"):
        ema.load_state_dict({"other": torch.zeros(1)})


def test_augmentation_keeps_shape_and_range_leaves_wrist_geometry_and_is_reproducible() -> None:
    settings = AugmentSettings(brightness=0.0, contrast=0.0, saturation=0.0)
    assert wrist_flags(["head", "wrist"], settings) == [False, True]
    ramp = torch.linspace(-1, 1, 16).view(1, 1, 1, 1, 16).expand(3, 2, 3, 16, 16).clone()
    out_a = augment_images(ramp, [False, True], settings, torch.Generator().manual_seed(1))
    out_b = augment_images(ramp, [False, True], settings, torch.Generator().manual_seed(1))
    assert out_a.shape == ramp.shape and torch.equal(out_a, out_b)
    assert out_a.min() >= -1.0 - 1e-5 and out_a.max() <= 1.0 + 1e-5
    assert torch.equal(out_a[:, 1], ramp[:, 1])  # wrist: no geometry, and colour jitter is off here
    assert not torch.allclose(out_a[:, 0], ramp[:, 0], atol=1e-3)  # head camera was cropped/rotated
    colour = augment_images(ramp, [False, True], AugmentSettings(crop_scale=1.0, rotate_deg=0.0), torch.Generator().manual_seed(2))
    assert not torch.allclose(colour[:, 1], ramp[:, 1], atol=1e-3)  # colour jitter reaches the wrist by default
    off = augment_images(ramp, [False, True], AugmentSettings(enabled=False), torch.Generator())
    assert off is ramp


def test_lora_starts_as_identity_trains_only_adapters_and_merges_exactly() -> None:
    torch.manual_seed(0)
    model = nn.ModuleDict({"vlm": nn.Linear(6, 6), "expert": nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3))})
    x = torch.randn(5, 6)
    before = model["expert"](x)
    wrapped = apply_lora(model, [r"^expert"], rank=2, alpha=4.0)
    assert wrapped == ["expert.0", "expert.2"]
    assert isinstance(model["expert"][0], LoRALinear) and not isinstance(model["vlm"], LoRALinear)
    assert torch.allclose(model["expert"](x), before)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"expert.0.lora_a", "expert.0.lora_b", "expert.2.lora_a", "expert.2.lora_b"}
    with torch.no_grad():
        model["expert"][2].lora_b.normal_()
    adapted = model["expert"](x)
    assert not torch.allclose(adapted, before)
    plain = nn.ModuleDict({"vlm": nn.Linear(6, 6), "expert": nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3))})
    plain.load_state_dict(merged_state_dict(model))
    assert torch.allclose(plain["expert"](x), adapted, atol=1e-5)
    with pytest.raises(ValueError, match=r"match no nn\.Linear"):
        apply_lora(nn.Linear(2, 2), ["nothing"], rank=1, alpha=1.0)


def test_metrics_csv_appends_extends_columns_and_truncates_on_resume(tmp_path) -> None:
    log = CsvMetrics(tmp_path / "metrics.csv")
    log.log({"step": 1, "loss": 2.0})
    log.log({"step": 2, "loss": 1.5, "ce_loss": 0.7})
    log.log({"step": 3, "loss": 1.0, "ce_loss": 0.5})
    again = CsvMetrics(tmp_path / "metrics.csv")
    assert again.columns == ["step", "loss", "ce_loss"]
    again.truncate_after(2)
    rows = again.rows()
    assert [r["step"] for r in rows] == ["1", "2"] and rows[0]["ce_loss"] == "" and rows[1]["ce_loss"] == "0.7"


def test_config_rejects_unknown_keys_and_all_losses_off(tmp_path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("steps: 3\noptimiser: {lr: 1}\n")
    with pytest.raises(ValueError, match="optimiser"):
        TrainConfig.from_yaml(path)
    with pytest.raises(ValueError, match="nothing to train"):
        TrainConfig.model_validate({"loss": {"subtask_ce": False, "fast_ce": False, "flow_weight": 0}})
