"""The π₀.₅ co-training loop: flow matching + CE on subtask text and FAST action tokens, knowledge insulation.

One function, `train`, runs a whole run from a TrainConfig: it prepares the data (every frame decoded, resized
and tokenized once, see policy/training/data.py), builds or loads the model, and steps AdamW with warmup +
cosine, gradient clipping, EMA and image augmentation, saving exact-resume state every `save_every` steps and
exporting a servable checkpoint (EMA weights, LoRA merged, norm stats, tokenizers) at the end.

Determinism: every step draws its batch, its System-2/System-1 split, its augmentation and its flow-matching
noise and time from a generator seeded by (seed, step, rank). A run resumed from step k therefore computes
exactly the steps an uninterrupted run would have, which tests/policy/test_train.py checks bit for bit.

Run folder layout (`--out`):
  config.yaml          the resolved TrainConfig
  data/                prepared training arrays + norm stats + tokenizers (reusable as `--data`)
  metrics.csv          one row per `log_every` steps
  train_state/         exact-resume states (weights, optimizer, scheduler, EMA, RNG)
  checkpoint/          the exported policy (what `hearth eval` and `hearth serve-policy` load)

DDP: run the same command under `torchrun --nproc-per-node N -m agent.cli train ...`; each rank takes its slice
of every global batch, gradients are averaged by DistributedDataParallel, rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from policy.action_frame import ActionFrame, apply_to_model, apply_to_robot
from policy.normalize import NormStats
from policy.training.augment import augment_images, wrist_flags
from policy.training.batching import TrainSample
from policy.training.config import TrainConfig
from policy.training.data import TrainingArrays, batch_indices, subtask_repeats, weighted_order
from policy.training.distributed import DistInfo, barrier, init_distributed, mean_across_ranks, shutdown
from policy.training.ema import ExponentialMovingAverage
from policy.training.lora import apply_lora, merged_state_dict
from policy.training.metrics import CsvMetrics
from policy.training.optim import build_optimizer, build_scheduler
from policy.training.state import latest_state, load_state, save_state

logger = logging.getLogger(__name__)

DATA_DIR = "data"
ARRAYS_FILE = "arrays.npz"
DATA_META_FILE = "dataset.json"
EXPORT_DIR = "checkpoint"
VISION_PATTERN = r"^vision\."


class TrainingError(RuntimeError):
    """A run cannot start or continue (bad data, existing run folder without --resume, ...)."""


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path | None
    steps: int
    final_metrics: dict[str, float] = field(default_factory=dict)
    samples_per_s: float = 0.0


# ---- prepared data ------------------------------------------------------------------------------


@dataclass
class PreparedData:
    """Everything the loop needs from the dataset, and what the exported checkpoint must carry with it."""

    arrays: TrainingArrays
    norm_stats: Any  # policy.normalize.NormStats
    tokenizer: Any  # policy.tokenizers.text.TextTokenizer
    fast: Any | None  # policy.tokenizers.fast.FastTokenizer
    # camera_names, state_names, action_names, control_hz, robot_type, robot_interface_version, tasks, episodes, ...
    meta: dict[str, Any]

    def save(self, folder: Path, compress: bool = True) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.arrays.save(folder / ARRAYS_FILE, compress=compress)
        self.norm_stats.save(folder / "norm_stats.json")
        self.tokenizer.save(folder)
        if self.fast is not None:
            self.fast.save(folder / "fast_tokenizer.json")
        (folder / DATA_META_FILE).write_text(json.dumps(self.meta, indent=2))

    @classmethod
    def load(cls, folder: Path) -> PreparedData:
        from policy.tokenizers.text import TextTokenizer

        fast = None
        if (folder / "fast_tokenizer.json").exists():
            from policy.tokenizers.fast import FastTokenizer

            fast = FastTokenizer.load(folder / "fast_tokenizer.json")
        return cls(
            arrays=TrainingArrays.load(folder / ARRAYS_FILE),
            norm_stats=NormStats.load(folder / "norm_stats.json"),
            tokenizer=TextTokenizer.load(folder),
            fast=fast,
            meta=json.loads((folder / DATA_META_FILE).read_text()),
        )


def reframe_prepared(prepared: PreparedData, frame_spec: dict[str, Any] | None) -> PreparedData:
    """The same frames with their action chunks re-expressed in another action frame, and fresh action stats.

    Why: collecting and tokenizing the demonstrations takes longer than converting them; prepared arrays hold
    normalized absolute chunks and states, which `NormStats.unnormalize` inverts exactly (no clipping), so a
    dataset can move to relative actions (policy/action_frame.py) without the simulator. State stats, prompts
    and images are unchanged.
    """
    meta = prepared.meta
    if (meta.get("action_frame") or None) == (frame_spec or None):
        return prepared
    arrays = prepared.arrays
    if arrays.states is None:
        raise TrainingError("prepared data without continuous states cannot be re-framed; prepare it again")
    if prepared.fast is not None:
        raise TrainingError("prepared data with FAST targets cannot be re-framed (the tokens encode the old frame)")
    actions, norm_stats = reframe_chunks(
        arrays.actions, arrays.action_is_pad, arrays.states, prepared.norm_stats, meta, frame_spec
    )
    return PreparedData(
        replace(arrays, actions=actions),
        norm_stats,
        prepared.tokenizer,
        prepared.fast,
        {**meta, "action_frame": frame_spec},
    )


def reframe_chunks(
    actions: np.ndarray,
    action_is_pad: np.ndarray,
    states: np.ndarray,
    norm_stats: NormStats,
    meta: dict[str, Any],
    frame_spec: dict[str, Any] | None,
) -> tuple[np.ndarray, NormStats]:
    """Normalized chunks [N, H, max_action_dim] in `meta`'s frame -> the same chunks in `frame_spec`'s frame,
    normalized with fresh action stats (the state stats are kept). `states` are the normalized start states."""
    a, s = norm_stats.dim("actions"), norm_stats.dim("state")
    old = ActionFrame.from_metadata(meta)
    new = ActionFrame.from_spec(frame_spec, meta["action_names"], meta["state_names"])
    raw_states = norm_stats.unnormalize("state", states[:, :s])
    absolute = apply_to_robot(old, norm_stats.unnormalize("actions", actions[..., :a]), raw_states)
    reframed = apply_to_model(new, absolute, raw_states)
    action_stats = NormStats.from_arrays({"actions": reframed[~action_is_pad]})
    fresh = NormStats({"state": norm_stats["state"], "actions": action_stats["actions"]})
    out = actions.copy()
    out[..., :a] = fresh.normalize("actions", reframed)
    return out, fresh


def is_prepared_data(path: Path) -> bool:
    return (Path(path) / ARRAYS_FILE).exists() and (Path(path) / DATA_META_FILE).exists()


def prepare_data(
    data_dir: Path,
    config: TrainConfig,
    model_config,
    tokenizer,
    camera_names: list[str] | None = None,
    progress: bool = False,
) -> PreparedData:
    """Read a LeRobotDataset, compute norm stats, fit FAST, and encode every frame (see module docstring).

    Episodes are read sequentially through LeRobotDatasetReader (one video decode per episode and camera, far
    cheaper than random access per sample). The chunk at frame t is actions[t : t + H]; steps past the
    episode's end repeat its last action and are flagged in `action_is_pad` (LeRobot's convention), so the
    flow loss ignores them.
    """
    from policy.data.layout import interface_version_of
    from policy.data.reader import LeRobotDatasetReader
    from policy.training.batching import ExampleEncoder
    from policy.training.data import episode_samples, resize_uint8

    reader = LeRobotDatasetReader(data_dir)
    episodes = reader.episodes[: config.data.max_episodes] if config.data.max_episodes else reader.episodes
    if not episodes:
        raise TrainingError(f"{data_dir}: the dataset has no episodes")
    cameras = list(camera_names or reader.camera_names)
    missing = [c for c in cameras if c not in reader.camera_names]
    if missing:
        raise TrainingError(f"{data_dir}: no camera(s) {missing}; the dataset has {reader.camera_names}")
    norm_stats = reader.norm_stats([e.index for e in episodes])
    frame_spec = config.data.action_frame.as_metadata() if config.data.action_frame else None
    frame = ActionFrame.from_spec(frame_spec, reader.action_names, reader.state_names)
    horizon = model_config.action_horizon
    image_size = model_config.vision.image_size
    samples: list[tuple[int, TrainSample]] = []
    iterator = episodes
    if progress:
        from tqdm import tqdm

        iterator = tqdm(episodes, desc="read episodes", unit="episode")
    for episode in iterator:
        arrays = reader.episode_arrays(episode.index)
        videos = {
            c: np.stack([resize_uint8(f, image_size) for f in reader.decode_video(episode.index, c)]) for c in cameras
        }
        labels = [episode.subtask_at(t)[0] or "" for t in range(arrays["action"].shape[0])]
        samples.extend(
            (episode.index, s)
            for s in episode_samples(videos, arrays["state"], arrays["action"], labels, episode.task, horizon, frame)
        )
    if frame is not None:  # the flow targets are relative: their quantiles, not the dataset's absolute ones
        norm_stats = NormStats({"state": norm_stats["state"], "actions": model_frame_action_stats(samples)["actions"]})
    fast = _fit_fast(samples, norm_stats, config) if config.loss.fast_ce else None
    encoder = ExampleEncoder(
        tokenizer=tokenizer,
        norm_stats=norm_stats,
        max_len=config.loss.max_token_len or model_config.max_token_len,
        max_action_dim=model_config.max_action_dim,
        loss=config.loss,
        fast=fast,
        max_state_dim=model_config.max_state_dim,
    )
    arrays = TrainingArrays.build(samples, encoder, cameras, image_size)
    meta = {
        "camera_names": cameras,
        "state_names": reader.state_names,
        "action_names": reader.action_names,
        "control_hz": reader.fps,
        "robot_type": reader.info.get("robot_type", ""),
        "robot_interface_version": interface_version_of(reader.info),
        "action_frame": frame_spec,
        "episodes": len(episodes),
        "frames": len(arrays),
        "tasks": sorted({s.task for _, s in samples}),
        "subtasks": sorted({s.subtask for _, s in samples if s.subtask}),
        "source": str(Path(data_dir).resolve()),
        "image_size": image_size,
        "action_horizon": horizon,
    }
    return PreparedData(arrays, norm_stats, tokenizer, fast, meta)


def model_frame_action_stats(samples: Sequence[tuple[int, TrainSample]]) -> NormStats:
    """Action stats over every real (not padded) step of every chunk, in the frame the model predicts."""
    steps = np.concatenate([s.actions[~np.asarray(s.action_is_pad, bool)] for _, s in samples])
    return NormStats.from_arrays({"actions": steps})


def _fit_fast(samples, norm_stats, config: TrainConfig):
    from policy.tokenizers.fast import FastTokenizer

    rng = np.random.default_rng(config.seed)
    count = min(len(samples), config.loss.fast_fit_chunks)
    chosen = rng.choice(len(samples), size=count, replace=False)
    chunks = np.stack([norm_stats.normalize("actions", samples[i][1].actions) for i in chosen])
    return FastTokenizer.fit(chunks, vocab_size=config.loss.fast_vocab_size, scale=config.loss.fast_scale)


# ---- model ----------------------------------------------------------------------------------------


class _LossModule(nn.Module):
    """Exposes compute_loss as forward, so DistributedDataParallel's gradient hooks see the call."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch, noise, time):
        return self.model.compute_loss(batch, noise=noise, time=time)


# Config fields a warm start may change: the action expert has no positional weights per chunk step (the
# horizon is just how many suffix tokens it runs on), positions are RoPE (no table sized by the prompt length),
# and the Euler step count is a sampling choice.
INIT_OVERRIDABLE = frozenset({"action_horizon", "max_token_len", "num_steps"})


def build_model(config: TrainConfig, init: Path | None):
    """(model, model_config, tokenizer, init_metadata): fresh from a preset, or loaded from `--init`."""
    from policy.model.config import preset
    from policy.model.pi05 import Pi05Model

    if init is not None:
        from policy.inference import Pi05Policy

        policy = Pi05Policy.from_checkpoint(init, device="cpu", fast_path=False)  # plain modules to train
        model = policy.model.float()
        model.config.knowledge_insulation = config.loss.knowledge_insulation
        for key, value in config.model.overrides.items():
            if key not in INIT_OVERRIDABLE:
                raise TrainingError(
                    f"model.overrides.{key} cannot change a warm-started model (only {sorted(INIT_OVERRIDABLE)} can: "
                    "they leave every weight's meaning and shape alone)"
                )
            setattr(model.config, key, value)
        return model, model.config, policy.tokenizer, dict(policy.metadata)
    from policy.tokenizers.text import household_tokenizer

    tokenizer = household_tokenizer()
    overrides = {
        "vocab_size": tokenizer.vocab_size,
        "eos_token_id": tokenizer.eos_id,
        "pad_token_id": tokenizer.pad_id,
        **config.model.overrides,
        "knowledge_insulation": config.loss.knowledge_insulation,
    }
    model_config = preset(config.model.preset, **overrides)
    if tokenizer.vocab_size > model_config.vocab_size:
        raise TrainingError(
            f"tokenizer has {tokenizer.vocab_size} ids but the model's vocab_size is {model_config.vocab_size}"
        )
    return Pi05Model(model_config), model_config, tokenizer, {}


def apply_finetune_settings(model: nn.Module, config: TrainConfig) -> dict[str, int]:
    """Freeze by pattern and/or add LoRA adapters; returns parameter counts for the log."""
    ft = config.finetune
    if ft.lora_rank > 0:
        wrapped = apply_lora(model, ft.lora_patterns, ft.lora_rank, ft.lora_alpha)
        logger.info("LoRA adapters added", extra={"modules": len(wrapped), "rank": ft.lora_rank})
    patterns = list(ft.freeze_patterns) + ([VISION_PATTERN] if ft.freeze_vision else [])
    compiled = [re.compile(p) for p in patterns]
    frozen = 0
    for name, param in model.named_parameters():
        if any(p.search(name) for p in compiled):
            param.requires_grad = False
            frozen += 1
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable == 0:
        raise TrainingError("every parameter is frozen; nothing would train")
    return {"params": total, "trainable": trainable, "frozen_tensors": frozen}


# ---- the loop -------------------------------------------------------------------------------------


def _device(config: TrainConfig, info: DistInfo) -> torch.device:
    kind = config.device
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("device: cuda requested but torch sees no CUDA device")
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def _autocast(device: torch.device, precision: str):
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if use_bf16:
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7_919 + rank * 104_729) % (2**63 - 1)


def _check_run_dir(run_dir: Path, resume: bool) -> Path | None:
    state = latest_state(run_dir)
    if state is not None and not resume:
        raise TrainingError(f"{run_dir} already holds a run (last state {state.name}); pass --resume or a new --out")
    return state if resume else None


def train(
    config: TrainConfig,
    data: Path,
    out: Path,
    resume: bool = False,
    init: Path | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Run (or resume) a training run. `stop_after` ends early after that many steps of this call (tests)."""
    info = init_distributed(
        "cuda" if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    try:
        return _train(config, Path(data), Path(out), resume, init, progress and info.is_main, stop_after, on_step, info)
    finally:
        shutdown(info)


def _train(config, data, out, resume, init, progress, stop_after, on_step, info: DistInfo) -> TrainResult:
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.batch_size % info.world_size:
        raise TrainingError(f"batch_size {config.batch_size} is not divisible by {info.world_size} processes")
    device = _device(config, info)
    out.mkdir(parents=True, exist_ok=True)
    resume_from = _check_run_dir(out, resume)
    torch.manual_seed(config.seed)

    model, model_config, tokenizer, init_meta = build_model(config, init)
    prepared = _prepared_data(config, data, out, model_config, tokenizer, info, progress)
    arrays = prepared.arrays
    counts = apply_finetune_settings(model, config)
    model.to(device)
    if info.is_main:
        (out / "config.yaml").write_text(config.to_yaml())
        logger.info("model ready", extra={**counts, "device": str(device), "frames": len(arrays)})

    optimizer = build_optimizer(model, config.optimizer)
    scheduler = build_scheduler(optimizer, config.optimizer, config.steps)
    ema = ExponentialMovingAverage(model, config.ema_decay) if config.ema_decay > 0 else None
    start_step = 0
    if resume_from is not None:
        payload, meta = load_state(resume_from, map_location=device)
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        if ema is not None:
            ema.load_state_dict(payload["ema"])
        start_step = int(meta["step"])
        logger.info("resumed", extra={"step": start_step, "state": str(resume_from)})
    metrics = CsvMetrics(out / "metrics.csv") if info.is_main else None
    if metrics is not None:
        metrics.truncate_after(start_step)

    wrapped: nn.Module = _LossModule(model)
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(
            wrapped, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    arrays_t = arrays.to_torch(device)
    wrist = wrist_flags(arrays.camera_names, config.augment)
    autocast = _autocast(device, config.precision)
    per_rank = config.batch_size // info.world_size
    has_subtasks = bool(arrays.has_subtask.any()) and config.loss.subtask_ce
    n_s2 = round(per_rank * config.loss.subtask_fraction) if has_subtasks else 0
    n_s2 = min(n_s2, per_rank - 1) if config.loss.flow_weight > 0 or config.loss.fast_ce else n_s2
    horizon, action_width = arrays.actions.shape[1], arrays.actions.shape[2]
    order = weighted_order(subtask_repeats(arrays.s1_tokens, prepared.tokenizer.decode, config.data.subtask_weights))
    if config.data.subtask_weights and info.is_main:
        logger.info(
            "subtask weights", extra={"weights": config.data.subtask_weights, "frames": len(arrays), "pass": len(order)}
        )

    end_step = config.steps if stop_after is None else min(config.steps, start_step + stop_after)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, initial=start_step, desc=f"train {config.name}", unit="step", mininterval=2.0)
    window = _LossWindow()
    window_start, window_samples = time.monotonic(), 0
    run_start = time.monotonic()
    last: dict[str, float] = {}
    stopped_early = False
    model.train()
    for step in range(start_step, end_step):
        generator = torch.Generator().manual_seed(_step_seed(config.seed, step, info.rank))
        indices = order[batch_indices(len(order), config.batch_size, step, config.seed, info.rank, info.world_size)]
        kinds = torch.zeros(per_rank, dtype=torch.bool)
        kinds[:n_s2] = True
        noise = torch.randn((per_rank, horizon, action_width), generator=generator).to(device)
        flow_time = model.sample_time(per_rank, torch.device("cpu"), generator=generator).to(device)
        batch = arrays_t.batch(indices, kinds)
        batch.images = augment_images(batch.images, wrist, config.augment, generator)
        terms = _forward_split(wrapped, batch, noise, flow_time, n_s2, autocast)
        loss = (
            config.loss.flow_weight * terms["flow_loss"]
            + config.loss.fast_weight * terms["fast_ce"]
            + config.loss.subtask_weight * terms["subtask_ce"]
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for p in model.parameters() if p.requires_grad], config.optimizer.grad_clip
        )
        optimizer.step()
        scheduler.step()
        if ema is not None:
            ema.update(model)
        done = step + 1
        step_terms = {**terms, "loss": loss, "grad_norm": grad_norm}
        window.add(step_terms)  # summed on the device: no host read, so a GPU step is never stalled
        window_samples += config.batch_size
        if bar is not None:
            bar.update(1)
        if done % config.log_every == 0 or done == end_step:
            means = mean_across_ranks(window.means(done), info, device)  # the one host read per log_every steps
            elapsed = time.monotonic() - window_start
            last = {
                **means,
                "lr": optimizer.param_groups[0]["lr"],
                "samples_per_s": window_samples / max(elapsed, 1e-9),
            }
            if metrics is not None:
                metrics.log(
                    {
                        "step": done,
                        **{k: round(v, 6) for k, v in last.items()},
                        "elapsed_s": round(time.monotonic() - run_start, 2),
                    }
                )
            if bar is not None:
                bar.set_postfix(loss=f"{last['loss']:.4f}", refresh=False)
            window, window_start, window_samples = _LossWindow(), time.monotonic(), 0
        if on_step is not None:  # a per-step callback asks for per-step numbers, and pays the host read
            on_step(done, {k: float(v.detach()) for k, v in step_terms.items()})
        out_of_time = _out_of_time(config, run_start, info, device)
        if done % config.save_every == 0 or done == end_step or out_of_time:
            window.check_finite(done)  # never save weights a non-finite loss has already stepped
            _save(out, done, model, optimizer, scheduler, ema, config, info)
        if out_of_time:
            logger.warning("time limit reached; stopping early", extra={"step": done, "limit_s": config.time_limit_s})
            end_step = done
            stopped_early = True
            break
    if bar is not None:
        bar.close()
    checkpoint = None
    if (end_step == config.steps or stopped_early) and info.is_main:
        checkpoint = export_checkpoint(out / EXPORT_DIR, model, ema, prepared, config, init_meta, end_step)
    barrier(info)
    return TrainResult(out, checkpoint, end_step, last, last.get("samples_per_s", 0.0))


class _LossWindow:
    """Loss terms summed on their device between two log lines, plus a sticky non-finite flag.

    Reading a CUDA tensor (`float(loss)`, `.item()`) waits for the GPU to finish the step; doing it every step
    leaves the GPU idle while Python prepares the next batch. Sums stay on the device and are read once per
    `log_every` steps; a non-finite loss is caught at that read (or before a save) instead of at its own step.
    """

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.nonfinite: torch.Tensor | None = None

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        for key, value in terms.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
        bad = ~torch.isfinite(terms["loss"].detach())
        self.nonfinite = bad if self.nonfinite is None else self.nonfinite | bad
        self.count += 1

    def check_finite(self, step: int) -> None:
        if self.nonfinite is not None and bool(self.nonfinite):
            raise TrainingError(
                f"loss became non-finite within the {self.count} steps up to step {step}; "
                "lower optimizer.lr or check the data"
            )

    def means(self, step: int) -> dict[str, float]:
        """Mean of every term over the window (host read); raises TrainingError if any loss was non-finite."""
        self.check_finite(step)
        if not self.sums:
            return {}
        keys = sorted(self.sums)
        values = (torch.stack([self.sums[k] for k in keys]) / self.count).tolist()
        return dict(zip(keys, values, strict=True))


def _out_of_time(config: TrainConfig, run_start: float, info: DistInfo, device: torch.device) -> bool:
    """All ranks agree (rank 0 decides), so no rank leaves the collective calls alone.

    A single process decides on the host clock alone: no device tensor, so no synchronisation per step.
    """
    if config.time_limit_s is None:
        return False
    if not info.enabled:
        return time.monotonic() - run_start > config.time_limit_s
    flag = torch.tensor([float(time.monotonic() - run_start > config.time_limit_s)], device=device)
    if info.enabled:
        import torch.distributed as dist

        dist.broadcast(flag, src=0)
    return bool(flag.item())


def _forward_split(wrapped, batch, noise, flow_time, n_s2: int, autocast) -> dict[str, torch.Tensor]:
    """System-2 rows [:n_s2] and System-1 rows [n_s2:] in separate passes, so each CE is its own mean."""
    zero = torch.zeros((), device=noise.device)
    terms = {"flow_loss": zero, "fast_ce": zero, "subtask_ce": zero}
    b = batch.tokens.shape[0]
    if n_s2 > 0:
        with autocast():
            out = wrapped(_rows(batch, slice(0, n_s2)), noise[:n_s2], flow_time[:n_s2])
        terms["subtask_ce"] = out["ce_loss"].float()
    if n_s2 < b:
        with autocast():
            out = wrapped(_rows(batch, slice(n_s2, b)), noise[n_s2:], flow_time[n_s2:])
        terms["fast_ce"] = out["ce_loss"].float()
        terms["flow_loss"] = out["flow_loss"].float()
    return terms


def _rows(batch, rows: slice):
    import dataclasses

    return type(batch)(
        **{
            f.name: (getattr(batch, f.name)[rows] if getattr(batch, f.name) is not None else None)
            for f in dataclasses.fields(batch)
        }
    )


def _prepared_data(config, data: Path, out: Path, model_config, tokenizer, info: DistInfo, progress) -> PreparedData:
    """Use `data` directly when it is already prepared; else rank 0 prepares into out/data once. Folders in
    `config.data.extra_prepared` are fitted the same way and appended (`append_prepared`)."""
    if is_prepared_data(data):
        prepared = PreparedData.load(data)
    else:
        target = out / DATA_DIR
        if info.is_main and not is_prepared_data(target):
            prepare_data(data, config, model_config, tokenizer, progress=progress).save(target)
        barrier(info)
        prepared = PreparedData.load(target)
    prepared = _fitted(prepared, config, model_config)
    for folder in config.data.extra_prepared:
        if not is_prepared_data(Path(folder)):
            raise TrainingError(f"data.extra_prepared: {folder} is not a prepared data folder")
        prepared = append_prepared(prepared, _fitted(PreparedData.load(Path(folder)), config, model_config))
    return prepared


def _fitted(prepared: PreparedData, config, model_config) -> PreparedData:
    """Prepared data checked against the model, cut to its horizon and re-expressed in the config's action frame."""
    image_size = model_config.vision.image_size
    if prepared.arrays.images.shape[2] != image_size:
        raise TrainingError(
            f"prepared data has {prepared.arrays.images.shape[2]} px images but the model expects {image_size} px"
        )
    if prepared.arrays.actions.shape[1] > model_config.action_horizon:
        # the chunk at t is actions[t : t + H]; its first H' steps are exactly the shorter chunk
        horizon = model_config.action_horizon
        prepared.arrays.actions = prepared.arrays.actions[:, :horizon]
        prepared.arrays.action_is_pad = prepared.arrays.action_is_pad[:, :horizon]
    # prepared for another action frame: re-expressed in memory, after the cut (stats of the chunks trained on)
    frame_spec = config.data.action_frame.as_metadata() if config.data.action_frame else None
    prepared = reframe_prepared(prepared, frame_spec)
    if prepared.arrays.actions.shape[1] != model_config.action_horizon:
        raise TrainingError(
            f"prepared data has action horizon {prepared.arrays.actions.shape[1]}, the model {model_config.action_horizon}"
        )
    states = prepared.arrays.states
    if model_config.state_token and states is None:
        raise TrainingError(
            "prepared data has no continuous states (it was prepared before the state token existed) but the model "
            "has a state token: prepare the data again from the dataset, or set model.overrides.state_token: false"
        )
    if model_config.state_token and states.shape[1] != model_config.max_state_dim:
        raise TrainingError(
            f"prepared states are {states.shape[1]} wide but the model's max_state_dim is {model_config.max_state_dim}"
        )
    return prepared


def append_prepared(main: PreparedData, extra: PreparedData) -> PreparedData:
    """`main` followed by `extra`, whose actions are re-normalized with `main`'s action stats (exact: both invert).

    Why only actions: prompts carry the state discretized with the stats the data was prepared with, so the two
    sets must share state stats (prepare extra data with `--init` of a checkpoint trained on the main data) and
    the same tokenizer; anything else is refused by name rather than silently mixing two normalizations.
    """
    for key in ("camera_names", "state_names", "action_names", "action_frame"):
        if (main.meta.get(key) or None) != (extra.meta.get(key) or None):
            raise TrainingError(f"extra prepared data differs in {key}: {extra.meta.get(key)} vs {main.meta.get(key)}")
    probe = "go to the table, pick up the can"  # token ids are only comparable under the same vocabulary
    if (main.tokenizer.vocab_size, main.tokenizer.encode(probe)) != (
        extra.tokenizer.vocab_size,
        extra.tokenizer.encode(probe),
    ):
        raise TrainingError("extra prepared data was tokenized with another tokenizer; prepare it with --init")
    if main.norm_stats["state"].to_json() != extra.norm_stats["state"].to_json():
        raise TrainingError("extra prepared data was normalized with other state stats; prepare it with --init")
    a, b = main.arrays, extra.arrays
    if a.s1_tokens.shape[1] != b.s1_tokens.shape[1] or a.actions.shape[1:] != b.actions.shape[1:]:
        raise TrainingError("extra prepared data has another token length or chunk shape")
    dim = main.norm_stats.dim("actions")
    actions = b.actions.copy()
    actions[..., :dim] = main.norm_stats.normalize(
        "actions", extra.norm_stats.unnormalize("actions", b.actions[..., :dim])
    )
    offset = int(a.episode_index.max()) + 1 if len(a) else 0
    merged = {}
    for name in (f.name for f in dataclasses.fields(a)):
        left, right = getattr(a, name), getattr(b, name)
        if name == "actions":
            right = actions
        elif name == "episode_index":
            right = right + offset
        merged[name] = np.concatenate([left, right]) if isinstance(left, np.ndarray) else left
    meta = {**main.meta, "extra_prepared": [*main.meta.get("extra_prepared", []), len(b)]}
    return PreparedData(type(a)(**merged), main.norm_stats, main.tokenizer, main.fast, meta)


def _save(out: Path, step: int, model, optimizer, scheduler, ema, config: TrainConfig, info: DistInfo) -> None:
    if info.is_main:
        payload = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
        }
        save_state(out, step, payload, {"name": config.name}, config.keep_last)
    barrier(info)


# ---- export ---------------------------------------------------------------------------------------

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def export_checkpoint(
    folder: Path,
    model: nn.Module,
    ema: ExponentialMovingAverage | None,
    prepared: PreparedData,
    config: TrainConfig,
    init_meta: dict[str, Any],
    step: int,
) -> Path:
    """Write a servable checkpoint: EMA weights (LoRA merged) in `export_dtype`, norm stats, tokenizers."""
    from policy.inference import Pi05Policy
    from policy.model.pi05 import Pi05Model

    state = ema.averaged_state(model) if ema is not None else model.state_dict()
    state = merged_state_dict(model, state)
    clean = Pi05Model(model.config)
    clean.load_state_dict({k: v.detach().float().cpu() for k, v in state.items()})
    meta = prepared.meta
    metadata = {
        "camera_names": meta["camera_names"],
        "state_names": meta.get("state_names") or init_meta.get("state_names") or [],
        "action_names": meta.get("action_names") or init_meta.get("action_names") or [],
        "control_hz": meta.get("control_hz", 20.0),
        # the robot interface the data was recorded on; None (old data) counts as v1, see agent/compat.py
        "robot_type": meta.get("robot_type") or "",
        "robot_interface_version": meta.get("robot_interface_version"),
        "action_frame": meta.get("action_frame"),
    }
    fast_path = None
    if prepared.fast is not None:
        fast_path = prepared.fast.save(folder.parent / f".{folder.name}-fast_tokenizer.json")
    policy = Pi05Policy(
        clean, prepared.tokenizer, prepared.norm_stats, metadata, device="cpu", fast_tokenizer_path=fast_path
    )
    if folder.exists():
        shutil.rmtree(folder)
    policy.save(folder)
    if fast_path is not None:
        fast_path.unlink()
    if config.export_dtype != "float32":
        _rewrite_weights_dtype(folder, _DTYPES[config.export_dtype])
    (folder / "training.json").write_text(
        json.dumps(
            {
                "steps": step,
                "config": config.model_dump(mode="json"),
                "data": {k: v for k, v in meta.items() if k != "subtasks"},
            },
            indent=2,
        )
    )
    logger.info("exported checkpoint", extra={"path": str(folder), "step": step})
    return folder


def _rewrite_weights_dtype(folder: Path, dtype: torch.dtype) -> None:
    """Policy.save writes float32; the bundled checkpoint is stored in bf16/fp16 to stay small."""
    from safetensors.torch import load_file, save_file

    from policy.checkpoints import FORMAT_NAME, WEIGHTS_FILE

    path = folder / WEIGHTS_FILE
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in load_file(str(path)).items()}
    tmp = folder / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp), metadata={"format": FORMAT_NAME})
    tmp.replace(path)
