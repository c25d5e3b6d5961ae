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
    colour = augment_images(
        ramp, [False, True], AugmentSettings(crop_scale=1.0, rotate_deg=0.0), torch.Generator().manual_seed(2)
    )
    assert not torch.allclose(colour[:, 1], ramp[:, 1], atol=1e-3)  # colour jitter reaches the wrist by default
    off = augment_images(ramp, [False, True], AugmentSettings(enabled=False), torch.Generator())
    assert off is ramp


def test_lora_starts_as_identity_trains_only_adapters_and_merges_exactly() -> None:
    torch.manual_seed(0)
    model = nn.ModuleDict(
        {"vlm": nn.Linear(6, 6), "expert": nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3))}
    )
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
    plain = nn.ModuleDict(
        {"vlm": nn.Linear(6, 6), "expert": nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3))}
    )
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


# ---- real training runs on the tiny model ---------------------------------------------------------

SUBTASKS = ["go to the table", "pick up the can", "place the can in the sink"]


def _synthetic_prepared(folder, config, frames: int = 24, horizon: int = 10):
    """A small prepared dataset: images, states and chunks that depend on the subtask, so there is signal."""
    import numpy as np

    from policy.model.config import preset
    from policy.normalize import NormStats
    from policy.tokenizers.fast import FastTokenizer
    from policy.tokenizers.text import household_tokenizer
    from policy.train import PreparedData
    from policy.training.batching import ExampleEncoder, TrainSample
    from policy.training.data import TrainingArrays

    rng = np.random.default_rng(0)
    samples = []
    for i in range(frames):
        phase = i * len(SUBTASKS) // frames
        t = np.linspace(0, 1, horizon)[:, None]
        actions = np.concatenate([np.sin(t * (phase + 1) * 3), np.cos(t * (phase + 1) * 2) * 0.5], axis=1)
        image = np.full((40, 40, 3), 40 + 80 * phase, np.uint8)
        image[rng.integers(0, 30) :, :10] = 255
        samples.append(
            (
                i // 8,
                TrainSample(
                    images={"head": image, "wrist": image[::-1].copy()},
                    state=np.array([phase, i / frames, 0.5], np.float32),
                    actions=actions.astype(np.float32),
                    action_is_pad=np.arange(horizon) >= horizon - (i % 3),
                    task="put the can in the sink",
                    subtask=SUBTASKS[phase],
                ),
            )
        )
    norm = NormStats.from_arrays(
        {"state": np.stack([s.state for _, s in samples]), "actions": np.concatenate([s.actions for _, s in samples])}
    )
    fast = FastTokenizer.fit(np.stack([norm.normalize("actions", s.actions) for _, s in samples]), vocab_size=512)
    tokenizer = household_tokenizer()
    model_config = preset(config.model.preset, **config.model.overrides)
    encoder = ExampleEncoder(
        tokenizer,
        norm,
        config.loss.max_token_len or model_config.max_token_len,
        model_config.max_action_dim,
        config.loss,
        fast,
    )
    arrays = TrainingArrays.build(samples, encoder, ["head", "wrist"], model_config.vision.image_size)
    meta = {
        "camera_names": ["head", "wrist"],
        "state_names": ["phase", "progress", "const"],
        "action_names": ["a0", "a1"],
        "control_hz": 20.0,
        "tasks": ["put the can in the sink"],
    }
    prepared = PreparedData(arrays, norm, tokenizer, fast, meta)
    prepared.save(folder)
    return prepared


@pytest.fixture(scope="module")
def tiny_config():
    from pathlib import Path

    return TrainConfig.from_yaml(Path(__file__).resolve().parents[2] / "configs/training/tiny-test.yaml")


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory, tiny_config):
    folder = tmp_path_factory.mktemp("prepared")
    _synthetic_prepared(folder, tiny_config)
    return folder


def test_prepared_data_encodes_both_example_kinds(prepared_dir, tiny_config) -> None:
    import numpy as np

    from policy.tokenizers.text import household_tokenizer
    from policy.train import PreparedData

    prepared = PreparedData.load(prepared_dir)
    arrays = prepared.arrays
    assert arrays.images.shape == (24, 2, 32, 32, 3) and arrays.has_subtask.all()
    tok = household_tokenizer()
    s2 = arrays.s2_tokens[0][arrays.s2_mask[0]]
    text = tok.decode(s2.tolist())
    assert text.startswith("Task: put the can in the sink, State: ") and text.endswith("Subtask: go to the table")
    assert tok.decode(arrays.s2_tokens[0][arrays.s2_loss[0]].tolist()) == "go to the table"
    s1_targets = arrays.s1_tokens[0][arrays.s1_loss[0]]
    assert s1_targets[-1] == tok.eos_id and (s1_targets[:-1] >= tok.vocab_size - prepared.fast.vocab_size).all()
    assert "Action: " in tok.decode(arrays.s1_tokens[0][arrays.s1_mask[0] & ~arrays.s1_loss[0]].tolist())
    batch = arrays.to_torch(torch.device("cpu")).batch(
        torch.tensor([0, 1, 2, 3]), torch.tensor([True, False, True, False])
    )
    assert batch.has_actions.tolist() == [False, True, False, True]
    assert torch.equal(batch.tokens[0], torch.from_numpy(arrays.s2_tokens[0]))
    assert torch.equal(batch.tokens[1], torch.from_numpy(arrays.s1_tokens[1]))
    assert batch.images.shape == (4, 2, 3, 32, 32) and batch.images.min() >= -1 and batch.images.max() <= 1
    # the continuous state for the state token: normalized like the prompt's bins, zero-padded to max_state_dim
    assert arrays.states.shape == (24, 32) and not arrays.states[:, 3:].any()
    phase = np.array([i * len(SUBTASKS) // 24 for i in range(24)], np.float32)
    np.testing.assert_allclose(arrays.states[:, 0], prepared.norm_stats.normalize("state", phase[:, None])[:, 0])
    assert torch.equal(batch.state, torch.from_numpy(arrays.states[:4]))


def test_subtask_weights_repeat_a_skills_frames_in_every_pass(prepared_dir) -> None:
    """Frames of a weighted subtask are drawn that many times per pass over the data, the rest once, and the
    draw stays a pure function of the step; a prefix no frame has, or a weight below 1, is refused."""
    import numpy as np

    from policy.train import PreparedData
    from policy.training.data import batch_indices, subtask_repeats, weighted_order

    prepared = PreparedData.load(prepared_dir)
    tokens, decode = prepared.arrays.s1_tokens, prepared.tokenizer.decode
    phase = np.array([i * len(SUBTASKS) // 24 for i in range(24)])
    repeats = subtask_repeats(tokens, decode, {"pick up": 3})
    assert repeats.tolist() == [3 if p == 1 else 1 for p in phase]
    assert subtask_repeats(tokens, decode, {}).tolist() == [1] * 24
    order = weighted_order(repeats)
    assert len(order) == 8 * 3 + 16
    one_pass = torch.cat([order[batch_indices(len(order), 8, step, seed=0)] for step in range(5)])
    counts = np.bincount(one_pass.numpy(), minlength=24)
    assert (counts[phase == 1] == 3).all() and (counts[phase != 1] == 1).all()
    assert torch.equal(order[batch_indices(len(order), 8, 3, seed=0)], one_pass[24:32])
    with pytest.raises(ValueError, match="pick the"):
        subtask_repeats(tokens, decode, {"pick up": 2, "pick the": 2})
    with pytest.raises(ValueError, match="whole number"):
        TrainConfig.model_validate({"data": {"subtask_weights": {"pick up": 0}}})


def test_data_prepared_without_states_is_refused_for_a_state_token_model(prepared_dir, tiny_config, tmp_path) -> None:
    from policy.train import PreparedData, TrainingError, train

    prepared = PreparedData.load(prepared_dir)
    prepared.arrays.states = None  # as data prepared before the state token existed
    prepared.save(tmp_path / "old-data")
    with pytest.raises(TrainingError, match="no continuous states"):
        train(tiny_config, tmp_path / "old-data", tmp_path / "run", progress=False)


def test_a_few_training_steps_decrease_the_loss_and_export_a_loadable_policy(
    prepared_dir, tiny_config, tmp_path
) -> None:
    from policy.inference import Pi05Policy
    from policy.train import train

    losses = []
    result = train(
        tiny_config, prepared_dir, tmp_path / "run", progress=False, on_step=lambda step, values: losses.append(values)
    )
    assert result.steps == tiny_config.steps
    first = sum(v["loss"] for v in losses[:5]) / 5
    last = sum(v["loss"] for v in losses[-5:]) / 5
    assert last < 0.7 * first, (first, last)
    for key in ("flow_loss", "fast_ce", "subtask_ce"):
        assert losses[-1][key] > 0 and sum(v[key] for v in losses[-5:]) < sum(v[key] for v in losses[:5])
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 1 + tiny_config.steps // tiny_config.log_every
    policy = Pi05Policy.from_checkpoint(result.checkpoint, device="cpu")
    assert policy.metadata["camera_names"] == ["head", "wrist"] and policy.metadata["action_names"] == ["a0", "a1"]
    assert (result.checkpoint / "fast_tokenizer.json").exists() and (result.checkpoint / "training.json").exists()


def test_export_records_the_robot_interface_the_data_was_recorded_on(tiny_config, tmp_path) -> None:
    import json

    from policy.normalize import NormStats
    from policy.train import PreparedData, build_model, export_checkpoint

    model, _, tokenizer, _ = build_model(tiny_config, None)
    meta = {
        "camera_names": ["head", "wrist"],
        "state_names": ["s0"],
        "action_names": ["a0", "a1"],
        "control_hz": 20.0,
        "robot_type": "test-bot",
        "robot_interface_version": 3,
    }
    for name, data in (("new", meta), ("old", {k: v for k, v in meta.items() if not k.startswith("robot_")})):
        prepared = PreparedData(None, NormStats.unit(1, 2), tokenizer, None, data)  # export reads no arrays
        export_checkpoint(tmp_path / name, model, None, prepared, tiny_config, {}, step=0)
    new = json.loads((tmp_path / "new" / "config.json").read_text())
    assert new["robot_type"] == "test-bot" and new["robot_interface_version"] == 3
    old = json.loads((tmp_path / "old" / "config.json").read_text())
    assert "robot_type" not in old and "robot_interface_version" not in old  # agent/compat.py reads this as v1


def test_resume_restores_step_optimizer_and_ema_exactly(prepared_dir, tiny_config, tmp_path) -> None:
    from policy.train import TrainingError, train
    from policy.training.state import latest_state, load_state

    config = tiny_config.model_copy(update={"steps": 8, "save_every": 4})
    train(config, prepared_dir, tmp_path / "straight", progress=False)
    train(config, prepared_dir, tmp_path / "split", progress=False, stop_after=4)
    assert latest_state(tmp_path / "split").name == "step_0000004"
    with pytest.raises(TrainingError, match="--resume"):
        train(config, prepared_dir, tmp_path / "split", progress=False)
    train(config, prepared_dir, tmp_path / "split", resume=True, progress=False)
    straight, meta_a = load_state(latest_state(tmp_path / "straight"))
    split, meta_b = load_state(latest_state(tmp_path / "split"))
    assert meta_a["step"] == meta_b["step"] == 8
    for key in ("model", "ema"):
        assert straight[key].keys() == split[key].keys()
        for name in straight[key]:
            assert torch.equal(straight[key][name], split[key][name]), (key, name)
    opt_a, opt_b = straight["optimizer"]["state"], split["optimizer"]["state"]
    assert opt_a.keys() == opt_b.keys()
    for index in opt_a:
        for field in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt_a[index][field], opt_b[index][field])
    assert straight["scheduler"] == split["scheduler"]
    rows = (tmp_path / "split" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["4", "5", "8"]  # the interrupted call logged its last step


# ---- the real command line: a LeRobotDataset in, a checkpoint out; and DDP under torchrun -------------


def _write_dataset(root) -> None:
    import numpy as np

    from policy.data.writer import LeRobotDatasetWriter

    writer = LeRobotDatasetWriter(
        root,
        20.0,
        "test-bot",
        {"head": (48, 48), "wrist": (48, 48)},
        ["s0", "s1", "s2"],
        ["a0", "a1"],
        robot_interface_version=3,
    )
    rng = np.random.default_rng(1)
    for episode in range(2):
        writer.begin_episode("put the can in the sink")
        for t in range(14):
            if t in (0, 7):
                writer.set_subtask(SUBTASKS[t // 7], "expert")
            image = np.full((48, 48, 3), 15 * t, np.uint8)
            writer.add_frame(
                {"head": image, "wrist": image},
                rng.normal(size=3).astype(np.float32),
                np.array([t / 14, episode], np.float32),
            )
        writer.end_episode("succeeded", True)
    writer.close()


def _run(args: list[str], log, timeout: float = 240.0) -> str:
    import sys

    from tests.support import spawn

    with spawn([sys.executable, *args], log) as process:
        process.popen.wait(timeout=timeout)
        text = process.log_text()
        assert process.popen.returncode == 0, text[-3000:]
        return text


@pytest.mark.slow
def test_hearth_train_cli_reads_a_lerobot_dataset_and_exports_a_checkpoint(tmp_path) -> None:
    import json

    from policy.inference import Pi05Policy
    from policy.train import PreparedData

    _write_dataset(tmp_path / "demos")
    text = _run(
        [
            "-m",
            "agent.cli",
            "train",
            "--config",
            "tiny-test",
            "--data",
            str(tmp_path / "demos"),
            "--out",
            str(tmp_path / "run"),
            "--set",
            "steps=4",
            "--set",
            "save_every=2",
            "--set",
            "loss.fast_fit_chunks=16",
            "--no-progress",
        ],
        tmp_path / "train.log",
    )
    assert "checkpoint:" in text
    prepared = PreparedData.load(tmp_path / "run" / "data")
    assert len(prepared.arrays) == 28 and prepared.meta["action_names"] == ["a0", "a1"]
    pad = prepared.arrays.action_is_pad
    assert not pad[0].any() and pad[13, 1:].all() and not pad[13, 0]  # the last frame's chunk is padding after 1 step
    assert prepared.arrays.has_subtask.all()
    assert prepared.meta["robot_type"] == "test-bot" and prepared.meta["robot_interface_version"] == 3
    policy = Pi05Policy.from_checkpoint(tmp_path / "run" / "checkpoint", device="cpu")
    assert policy.metadata["state_names"] == ["s0", "s1", "s2"]
    assert policy.metadata["robot_type"] == "test-bot" and policy.metadata["robot_interface_version"] == 3
    assert json.loads((tmp_path / "run" / "checkpoint" / "training.json").read_text())["steps"] == 4
    bad = tmp_path / "bad.yaml"
    bad.write_text("stepz: 3\n")
    from tests.support import spawn

    with spawn(
        [
            __import__("sys").executable,
            "-m",
            "agent.cli",
            "train",
            "--config",
            str(bad),
            "--data",
            str(tmp_path / "demos"),
            "--out",
            str(tmp_path / "bad-run"),
        ],
        tmp_path / "bad.log",
    ) as process:
        assert process.popen.wait(timeout=120) != 0
        assert "stepz" in process.log_text()


@pytest.mark.slow
def test_ddp_under_torchrun_with_two_cpu_processes(prepared_dir, tmp_path) -> None:
    from tests.support import free_port

    text = _run(
        [
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            str(free_port()),
            "-m",
            "agent.cli",
            "train",
            "--config",
            "tiny-test",
            "--data",
            str(prepared_dir),
            "--out",
            str(tmp_path / "ddp"),
            "--set",
            "steps=4",
            "--set",
            "save_every=4",
            "--no-progress",
        ],
        tmp_path / "ddp.log",
    )
    assert text.count("joined process group") == 2
    assert (tmp_path / "ddp" / "checkpoint" / "model.safetensors").exists()
    rows = (tmp_path / "ddp" / "metrics.csv").read_text().splitlines()
    assert rows[-1].startswith("4,")


def test_finetune_from_a_checkpoint_with_lora_on_the_expert_and_a_frozen_vision_tower(
    prepared_dir, tiny_config, tmp_path
) -> None:
    from safetensors.torch import load_file

    from policy.train import train

    base = train(tiny_config.model_copy(update={"steps": 2}), prepared_dir, tmp_path / "base", progress=False)
    finetune = tiny_config.finetune.model_copy(
        update={"lora_rank": 2, "lora_patterns": [r"^expert\."], "freeze_vision": True}
    )
    config = tiny_config.model_copy(update={"steps": 3, "finetune": finetune, "ema_decay": 0.5})
    tuned = train(config, prepared_dir, tmp_path / "tuned", init=base.checkpoint, progress=False)
    before = load_file(str(base.checkpoint / "model.safetensors"))
    after = load_file(str(tuned.checkpoint / "model.safetensors"))
    assert before.keys() == after.keys()  # adapters were merged away
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("expert.") for k in changed)
    assert any(k.endswith("proj.weight") for k in changed)


def test_loss_window_sums_on_the_device_and_catches_a_non_finite_loss() -> None:
    """The loop reads losses once per log_every steps; a NaN in between still stops the run at that read."""
    from policy.train import TrainingError, _LossWindow

    window = _LossWindow()
    window.add({"loss": torch.tensor(1.0), "flow_loss": torch.tensor(0.5)})
    window.add({"loss": torch.tensor(3.0), "flow_loss": torch.tensor(1.5)})
    assert window.means(2) == {"flow_loss": 1.0, "loss": 2.0}
    window.add({"loss": torch.tensor(float("nan")), "flow_loss": torch.tensor(0.0)})
    window.add({"loss": torch.tensor(1.0), "flow_loss": torch.tensor(0.0)})
    with pytest.raises(TrainingError, match="non-finite within the 4 steps up to step 4"):
        window.means(4)
