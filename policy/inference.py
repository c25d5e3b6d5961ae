"""Pi05Policy: observations and text in, action chunks (robot units) or subtask text out.

The model works on normalized, padded tensors; this module owns the conversion both ways, the way
openpi's transform pipeline does it (Physical-Intelligence/openpi src/openpi/policies/policy_config.py `create_trained_policy`, src/openpi/transforms.py): images -> resize-with-pad -> [-1, 1];
state -> quantile-normalize -> 256 bins in the prompt, and zero-padded into the continuous state token when
the model has one; actions -> unpad -> unnormalize. Bad input is refused with a PolicyInputError that says
what is wrong; it never becomes a silent zero chunk.

On CUDA the model runs through the fast path (policy/fast_path.py: static buffers, CUDA graphs, fused
projections) unless `fast_path=False` or the environment says `HEARTH_FAST_PATH=0` (the switch for a deployed
worker); `warmup()` builds its graphs so no request pays for capture.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from policy.action_frame import ActionFrame, apply_to_model, apply_to_robot
from policy.checkpoints import (
    CONFIG_FILE,
    NORM_STATS_FILE,
    CheckpointError,
    is_hearth_checkpoint,
    load_pretrained,
    load_weights,
    read_config,
    save_weights,
    write_config,
)
from policy.fast_path import FastPi05, bucket_for
from policy.model.config import Pi05Config, preset
from policy.model.pi05 import Pi05Batch, Pi05Model
from policy.normalize import NormStats
from policy.tokenizers.prompt import action_prompt, prompt_token_count, subtask_prompt, tokenize_prompt
from policy.tokenizers.text import TextTokenizer, household_tokenizer
from policy.types import ActionChunk, ObservationLike, PolicyInputError

logger = logging.getLogger(__name__)

DEFAULT_STATE_NAMES = [*(f"joint_{i}" for i in range(7)), "gripper"]
DEFAULT_ACTION_NAMES = [*(f"joint_{i}" for i in range(7)), "gripper"]
FAST_TOKENIZER_FILE = "fast_tokenizer.json"
FAST_PATH_ENV = "HEARTH_FAST_PATH"  # "auto" (default: on for CUDA), "1"/"on", "0"/"off"


def fast_path_default(device: torch.device) -> bool:
    """Whether a policy on `device` uses the fast path when its caller does not say: `HEARTH_FAST_PATH`, else CUDA."""
    value = os.environ.get(FAST_PATH_ENV, "auto").strip().lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    if value == "auto":
        return device.type == "cuda"
    raise ValueError(f"{FAST_PATH_ENV}={value!r}: expected auto, 1/on or 0/off")


# ---- image preprocessing ------------------------------------------------------------------------
def resize_with_pad(image: torch.Tensor, size: int, pad_value: float = -1.0) -> torch.Tensor:
    """[..., 3, h, w] float -> [..., 3, size, size]: aspect-preserving bilinear resize, centred padding.

    Mirrors openpi/LeRobot `resize_with_pad` (pad value -1 in [-1, 1] space = black in uint8).
    """
    h, w = image.shape[-2:]
    if h == size and w == size:
        return image
    lead = image.shape[:-3]
    flat = image.reshape(-1, 3, h, w)
    ratio = max(h / size, w / size)
    new_h, new_w = max(1, int(h / ratio)), max(1, int(w / ratio))
    resized = F.interpolate(flat, size=(new_h, new_w), mode="bilinear", align_corners=False)
    resized = resized.clamp(-1.0, 1.0)
    pad_h, pad_w = size - new_h, size - new_w
    top, left = pad_h // 2, pad_w // 2
    padded = F.pad(resized, (left, pad_w - left, top, pad_h - top), value=pad_value)
    return padded.reshape(*lead, 3, size, size)


def image_to_tensor(image: np.ndarray, camera: str) -> torch.Tensor:
    """One camera frame (uint8 HxWx3, or float in [0, 1], or CHW) -> float [3, h, w] in [-1, 1]."""
    array = np.asarray(image)
    if array.ndim != 3:
        raise PolicyInputError(f"camera {camera!r}: expected an HxWx3 image, got shape {array.shape}")
    if array.shape[-1] != 3 and array.shape[0] == 3:
        array = np.moveaxis(array, 0, -1)
    if array.shape[-1] != 3:
        raise PolicyInputError(f"camera {camera!r}: expected 3 colour channels (HxWx3), got shape {array.shape}")
    if array.shape[0] < 2 or array.shape[1] < 2:
        raise PolicyInputError(f"camera {camera!r}: image of shape {array.shape} is too small")
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        if not np.all(np.isfinite(values)):
            raise PolicyInputError(f"camera {camera!r}: image contains NaN or inf")
        if values.min() < 0.0 or values.max() > 1.0:
            raise PolicyInputError(
                f"camera {camera!r}: float images must be in [0, 1], got [{values.min()}, {values.max()}]"
            )
    else:
        raise PolicyInputError(f"camera {camera!r}: unsupported image dtype {array.dtype} (use uint8)")
    tensor = torch.from_numpy(np.ascontiguousarray(values)).permute(2, 0, 1)
    return tensor * 2.0 - 1.0


def preprocess_images(images: Mapping[str, np.ndarray], camera_names: Sequence[str], size: int) -> torch.Tensor:
    """Camera dict -> [n_cam, 3, size, size] in [-1, 1], in `camera_names` order; every camera required."""
    if not isinstance(images, Mapping):
        raise PolicyInputError(f"images must be a dict of camera name -> HxWx3 image, got {type(images).__name__}")
    missing = [name for name in camera_names if name not in images]
    if missing:
        raise PolicyInputError(
            f"missing camera(s) {missing}; this policy needs {list(camera_names)}, got {sorted(images)}"
        )
    return torch.stack([resize_with_pad(image_to_tensor(images[name], name), size) for name in camera_names])


def pad_last(x: np.ndarray, dim: int) -> np.ndarray:
    """Zero-pad the last axis to `dim` (openpi `PadStatesAndActions`)."""
    if x.shape[-1] > dim:
        raise ValueError(f"cannot pad {x.shape[-1]} dims down to {dim}")
    out = np.zeros((*x.shape[:-1], dim), dtype=np.float32)
    out[..., : x.shape[-1]] = x
    return out


# ---- the policy -----------------------------------------------------------------------------------
class Pi05Policy:
    """A π₀.₅ model with its normalization, tokenizer and robot metadata; thread-safe."""

    def __init__(
        self,
        model: Pi05Model,
        tokenizer: TextTokenizer,
        norm_stats: NormStats,
        metadata: Mapping[str, Any],
        device: str | None = None,
        fast_tokenizer_path: str | Path | None = None,
        dtype: torch.dtype | None = None,
        compile: bool = False,
        fast_path: bool | None = None,
        fast_options: Mapping[str, Any] | None = None,
    ):
        """`dtype` defaults to bfloat16 on CUDA and float32 on CPU (norms, RoPE, softmax stay float32 inside).

        `fast_path` (default: `fast_path_default`, i.e. on for CUDA) serves through `FastPi05` (`fast_options` are its keyword arguments);
        it fuses the model's projections in place, which leaves its state dict and outputs as they were.
        `compile` wraps the eager path's expert step in torch.compile (with the fast path, use
        `fast_options={"compile_mode": ...}` instead).
        """
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = dtype or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        self.model = model.to(self.device, dtype).eval()
        if compile:
            self.model.expert_velocity = torch.compile(self.model.expert_velocity)  # type: ignore[method-assign]
        use_fast = fast_path_default(self.device) if fast_path is None else fast_path
        self.fast: FastPi05 | None = FastPi05(self.model, **dict(fast_options or {})) if use_fast else None
        self.tokenizer = tokenizer
        self.norm_stats = norm_stats
        self.fast_tokenizer_path = Path(fast_tokenizer_path) if fast_tokenizer_path else None
        config = model.config
        camera_names = list(metadata["camera_names"])
        state_names = list(metadata["state_names"])
        action_names = list(metadata["action_names"])
        if not camera_names:
            raise ValueError("a policy needs at least one camera")
        if len(state_names) > config.max_state_dim or len(action_names) > config.max_action_dim:
            raise ValueError(
                f"{len(state_names)} state / {len(action_names)} action dims exceed the model's "
                f"{config.max_state_dim}/{config.max_action_dim}"
            )
        if tokenizer.vocab_size > config.vocab_size:
            raise ValueError(f"tokenizer vocabulary {tokenizer.vocab_size} exceeds the model's {config.vocab_size}")
        for key, names in (("state", state_names), ("actions", action_names)):
            if norm_stats.dim(key) != len(names):
                raise ValueError(
                    f"norm stats for {key!r} have {norm_stats.dim(key)} dims but there are {len(names)} names"
                )
        self.metadata: dict[str, Any] = {
            "camera_names": camera_names,
            "state_names": state_names,
            "action_names": action_names,
            "action_horizon": config.action_horizon,
            "action_dim": len(action_names),
            "control_hz": float(metadata.get("control_hz", 20.0)),
            "image_size": config.image_size,
            "preset": config.preset,
            # the robot interface the weights were trained on ("" / None: not recorded; agent/compat.py decides)
            "robot_type": str(metadata.get("robot_type") or ""),
            "robot_interface_version": _optional_int(metadata.get("robot_interface_version")),
            # which actions the model predicts relative to the chunk's start state (policy/action_frame.py)
            "action_frame": dict(metadata.get("action_frame") or {}),
        }
        self.action_frame = ActionFrame.from_metadata(self.metadata)
        self._lock = threading.Lock()
        self._chunk_ids = itertools.count()

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def build_random_for(cls, robot: Any, preset: str = "tiny", seed: int = 0, **kwargs: Any) -> Pi05Policy:
        """`build_random` shaped for a robot description (anything with the RobotDescription fields): its cameras,
        state/action names, control rate, robot type and interface version. `kwargs` go to `build_random`
        (device, fast_path, model-config overrides)."""
        return cls.build_random(
            preset,
            camera_names=tuple(robot.camera_names),
            state_names=robot.state_names,
            action_names=robot.action_names,
            control_hz=robot.control_hz,
            seed=seed,
            robot_type=robot.robot_type,
            robot_interface_version=robot.interface_version,
            **kwargs,
        )

    @classmethod
    def build_random(
        cls,
        preset: str = "tiny",
        camera_names: Sequence[str] = ("head", "wrist"),
        state_names: Sequence[str] | None = None,
        action_names: Sequence[str] | None = None,
        control_hz: float = 20.0,
        seed: int = 0,
        device: str | None = "cpu",
        robot_type: str = "",
        robot_interface_version: int | None = None,
        fast_path: bool | None = None,
        **overrides: Any,
    ) -> Pi05Policy:
        """Randomly initialised policy with unit norm stats and the household tokenizer (tests, benchmarks).

        Shaped for a robot, it should also carry the robot's ``robot_type`` and ``interface_version``: a named
        policy without a version counts as trained on interface v1 (agent/compat.py).
        """
        tokenizer = household_tokenizer()
        state_names = list(state_names) if state_names is not None else list(DEFAULT_STATE_NAMES)
        action_names = list(action_names) if action_names is not None else list(DEFAULT_ACTION_NAMES)
        overrides.setdefault("vocab_size", tokenizer.vocab_size)
        overrides.setdefault("eos_token_id", tokenizer.eos_id)
        overrides.setdefault("pad_token_id", tokenizer.pad_id)
        config = _preset(preset, **overrides)
        target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        with torch.random.fork_rng(devices=[]), torch.device(target):
            # built where it will run: the pi05 preset is 14 GB in float32, too slow to initialise on a CPU
            torch.manual_seed(seed)
            model = Pi05Model(config)
            randomize_adaptive_norms(model, seed)
        metadata = {
            "camera_names": list(camera_names),
            "state_names": state_names,
            "action_names": action_names,
            "control_hz": control_hz,
            "robot_type": robot_type,
            "robot_interface_version": robot_interface_version,
        }
        stats = NormStats.unit(len(state_names), len(action_names))
        return cls(model, tokenizer, stats, metadata, device=device, fast_path=fast_path)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | None = None, **options: Any) -> Pi05Policy:
        """Load a hearth checkpoint folder (model.safetensors, config.json, norm_stats.json, tokenizer)."""
        folder = Path(path)
        if not folder.is_dir():
            raise CheckpointError(f"checkpoint folder not found: {folder}")
        if not is_hearth_checkpoint(folder):
            raise CheckpointError(
                f"{folder} is not a hearth checkpoint (no {CONFIG_FILE} with format 'hearth-pi05'); "
                "wrap LeRobot/openpi weights with Pi05Policy.from_pretrained(...) and save() them first"
            )
        info = read_config(folder)
        model = Pi05Model(info.config)
        load_weights(model, folder)
        norm_stats = NormStats.load(folder / NORM_STATS_FILE)
        tokenizer = TextTokenizer.load(folder)
        fast = folder / FAST_TOKENIZER_FILE
        return cls(
            model,
            tokenizer,
            norm_stats,
            info.metadata,
            device=device,
            fast_tokenizer_path=fast if fast.is_file() else None,
            **options,
        )

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        tokenizer: TextTokenizer | str | Path,
        camera_names: Sequence[str],
        state_names: Sequence[str],
        action_names: Sequence[str],
        control_hz: float = 20.0,
        norm_stats: NormStats | None = None,
        config: Pi05Config | None = None,
        device: str | None = None,
    ) -> Pi05Policy:
        """Wrap LeRobot-layout or openpi-converted weights (or a hearth folder) with robot metadata.

        Foreign checkpoints know nothing about our robot, so the caller names cameras (in image-slot order),
        state and action dims, and supplies the tokenizer (PaliGemma's `tokenizer.model` for released
        weights) and norm stats when the checkpoint has none. `policy.save(dst)` then converts it.
        """
        model, found_stats = load_pretrained(path, config=config)
        stats = norm_stats or found_stats
        if stats is None:
            raise CheckpointError(f"{path} carries no norm stats; pass norm_stats= (quantiles of your robot's data)")
        if not isinstance(tokenizer, TextTokenizer):
            tokenizer = TextTokenizer.load(tokenizer)
        metadata = {
            "camera_names": list(camera_names),
            "state_names": list(state_names),
            "action_names": list(action_names),
            "control_hz": control_hz,
        }
        return cls(model, tokenizer, stats, metadata, device=device)

    def save(self, folder: str | Path) -> None:
        """Write a complete checkpoint folder that `from_checkpoint` (and the policy worker) can load."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        model = self.model
        if model.dtype != torch.float32 or model.projections_fused:  # fused weights are views; safetensors wants copies
            model = Pi05Model(self.model.config)
            model.load_state_dict({k: v.float().cpu() for k, v in self.model.state_dict().items()})
        save_weights(model, folder)
        meta = {
            k: self.metadata[k] for k in ("camera_names", "state_names", "action_names", "control_hz", "action_horizon")
        }
        meta.update(
            {k: self.metadata[k] for k in ("robot_type", "robot_interface_version", "action_frame") if self.metadata[k]}
        )
        write_config(folder, self.model.config, meta)
        self.norm_stats.save(folder / NORM_STATS_FILE)
        self.tokenizer.save(folder)
        if (
            self.fast_tokenizer_path is not None
            and self.fast_tokenizer_path.resolve() != (folder / FAST_TOKENIZER_FILE).resolve()
        ):
            (folder / FAST_TOKENIZER_FILE).write_bytes(self.fast_tokenizer_path.read_bytes())
        (folder / "README.md").write_text(_readme(self.metadata, self.model.config))

    # ---- input handling --------------------------------------------------------------------------
    @property
    def config(self) -> Pi05Config:
        return self.model.config

    def warmup(self, max_batch: int | None = None) -> float:
        """Build the fast path's shapes (on CUDA: capture its graphs) for this policy's cameras; seconds taken.

        `max_batch` (the most requests a caller batches) skips batch buckets it can never fill. Without the fast
        path there is nothing to prepare (0.0). The policy worker calls this before it reports healthy, so the
        first robot does not wait for graph capture.
        """
        if self.fast is None:
            return 0.0
        buckets = self.fast.batch_buckets
        if max_batch is not None:
            buckets = tuple(b for b in buckets if b <= bucket_for(min(max_batch, buckets[-1]), buckets))
        with self._lock:
            return self.fast.warmup(len(self.metadata["camera_names"]), batch_sizes=buckets)

    def normalized_state(self, obs: ObservationLike) -> np.ndarray:
        state = getattr(obs, "state", None)
        if state is None:
            raise PolicyInputError("observation has no state")
        state = np.asarray(state)
        expected = len(self.metadata["state_names"])
        if state.ndim != 1 or state.shape[0] != expected:
            raise PolicyInputError(
                f"state must be a vector of {expected} values {self.metadata['state_names']}, got shape {state.shape}"
            )
        if not np.issubdtype(state.dtype, np.number):
            raise PolicyInputError(f"state must be numeric, got dtype {state.dtype}")
        state = state.astype(np.float32)
        if not np.all(np.isfinite(state)):
            bad = [self.metadata["state_names"][i] for i in np.flatnonzero(~np.isfinite(state))]
            raise PolicyInputError(f"state contains NaN or inf in {bad}")
        return self.norm_stats.normalize("state", state)

    def _tokens(self, prompt: str) -> tuple[np.ndarray, np.ndarray]:
        max_len = self.config.max_token_len
        count = prompt_token_count(self.tokenizer, prompt)
        if count > max_len:
            raise PolicyInputError(
                f"prompt is too long: {count} tokens, this policy accepts at most {max_len} ({prompt!r})"
            )
        return tokenize_prompt(self.tokenizer, prompt, max_len)

    def make_batch(
        self, observations: Sequence[ObservationLike], texts: Sequence[str], system2: bool = False
    ) -> Pi05Batch:
        """Build the model batch for observations and their texts (subtasks, or tasks when `system2`)."""
        if len(observations) != len(texts):
            raise PolicyInputError(f"{len(observations)} observations but {len(texts)} prompts")
        if not observations:
            raise PolicyInputError("no observations")
        images, tokens, masks, states = [], [], [], []
        for obs, text in zip(observations, texts, strict=True):
            if not isinstance(text, str) or not text.strip():
                raise PolicyInputError("prompt must be a non-empty string")
            if not hasattr(obs, "images"):
                raise PolicyInputError(f"observation {type(obs).__name__} has no images")
            images.append(preprocess_images(obs.images, self.metadata["camera_names"], self.config.image_size))
            state = self.normalized_state(obs)
            prompt = subtask_prompt(text, state) if system2 else action_prompt(text, state)
            ids, mask = self._tokens(prompt)
            tokens.append(ids)
            masks.append(mask)
            states.append(pad_last(state, self.config.max_state_dim))
        n_cam = len(self.metadata["camera_names"])
        return Pi05Batch(
            images=torch.stack(images).to(self.device, self.model.dtype),
            image_masks=torch.ones(len(observations), n_cam, dtype=torch.bool, device=self.device),
            tokens=torch.from_numpy(np.stack(tokens)).to(self.device),
            token_mask=torch.from_numpy(np.stack(masks)).to(self.device),
            state=torch.from_numpy(np.stack(states)).to(self.device),
        )

    def _prev_actions(
        self, prev_chunks: Sequence[np.ndarray | None], delays: Sequence[int], states: Sequence[np.ndarray]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """The previous chunks' remaining actions, in the model's frame relative to the new chunk's start state."""
        if all(p is None for p in prev_chunks):
            return None
        horizon, action_dim = self.config.action_horizon, len(self.metadata["action_names"])
        prev = np.zeros((len(prev_chunks), horizon, self.config.max_action_dim), np.float32)
        lengths = np.zeros(len(prev_chunks), np.int64)
        for i, (chunk, delay, state) in enumerate(zip(prev_chunks, delays, states, strict=True)):
            if chunk is None:
                continue
            chunk = np.asarray(chunk, dtype=np.float32)
            if chunk.ndim != 2 or chunk.shape[1] != action_dim or chunk.shape[0] > horizon:
                raise PolicyInputError(f"prev_chunk must have shape (k <= {horizon}, {action_dim}), got {chunk.shape}")
            if not np.all(np.isfinite(chunk)):
                raise PolicyInputError("prev_chunk contains NaN or inf")
            if not 0 <= delay <= chunk.shape[0]:
                raise PolicyInputError(f"delay {delay} must be between 0 and the prev_chunk length {chunk.shape[0]}")
            model_frame = apply_to_model(self.action_frame, chunk, state)
            prev[i, : chunk.shape[0]] = pad_last(
                self.norm_stats.normalize("actions", model_frame), self.config.max_action_dim
            )
            lengths[i] = chunk.shape[0]
        delay_t = torch.tensor(
            [int(d) if p is not None else 0 for p, d in zip(prev_chunks, delays, strict=True)], device=self.device
        )
        return torch.from_numpy(prev).to(self.device), torch.from_numpy(lengths).to(self.device), delay_t

    # ---- System 1 --------------------------------------------------------------------------------
    def act(
        self,
        obs: ObservationLike,
        prompt: str,
        prev_chunk: np.ndarray | None = None,
        delay: int = 0,
        noise: np.ndarray | None = None,
    ) -> ActionChunk:
        """One action chunk [H, len(action_names)] in robot units for `prompt` (usually the current subtask).

        `prev_chunk` ([k, D], robot units) is the previous chunk's not-yet-executed actions and `delay` the
        number of them that will run before this chunk arrives; the new chunk is then guided to continue
        them smoothly (real-time chunking). `noise` ([H, 32]) fixes the sampler's starting point.
        """
        noises = None if noise is None else [noise]
        return self._act([obs], [prompt], [prev_chunk], [delay], noises)[0]

    def act_batch(
        self,
        observations: Sequence[ObservationLike],
        prompts: Sequence[str],
        prev_chunks: Sequence[np.ndarray | None] | None = None,
        delays: Sequence[int] | None = None,
        noises: Sequence[np.ndarray] | None = None,
    ) -> list[ActionChunk]:
        """Several observations in one forward pass (the worker batches concurrent clients this way)."""
        n = len(observations)
        prev_chunks = list(prev_chunks) if prev_chunks is not None else [None] * n
        delays = list(delays) if delays is not None else [0] * n
        if len(prev_chunks) != n or len(delays) != n:
            raise PolicyInputError("prev_chunks and delays must have one entry per observation")
        return self._act(observations, prompts, prev_chunks, delays, noises)

    def _act(self, observations, prompts, prev_chunks, delays, noises) -> list[ActionChunk]:
        batch = self.make_batch(observations, prompts)
        b = batch.batch_size
        shape = (self.config.action_horizon, self.config.max_action_dim)
        noise_t = None
        if noises is not None:
            arrays = [np.asarray(n, dtype=np.float32) for n in noises]
            if len(arrays) != b or any(a.shape != shape for a in arrays):
                raise PolicyInputError(f"noise must have shape {shape} per observation")
            noise_t = torch.from_numpy(np.stack(arrays)).to(self.device)
        states = [np.asarray(obs.state, np.float32) for obs in observations]  # validated by make_batch
        prev = self._prev_actions(prev_chunks, delays, states)
        with self._lock:
            if self.fast is not None:
                prev_actions, lengths, delay_t = prev if prev is not None else (None, None, None)
                actions = self.fast.sample_actions(batch, noise_t, prev_actions, lengths, delay_t)
            elif prev is None:
                actions = self.model.sample_actions(batch, noise=noise_t, num_steps=self.config.num_steps)
            else:
                prev_actions, lengths, delay_t = prev
                actions = self.model.sample_actions(
                    batch,
                    noise=noise_t,
                    num_steps=self.config.num_steps,
                    prev_actions=prev_actions,
                    delay=delay_t,
                    prev_lengths=lengths,
                )
        normalized = actions.float().cpu().numpy()[:, :, : len(self.metadata["action_names"])]
        chunks = []
        for i in range(b):
            robot_units = apply_to_robot(
                self.action_frame, self.norm_stats.unnormalize("actions", normalized[i]), states[i]
            )
            if not np.all(np.isfinite(robot_units)):
                raise RuntimeError("the model produced NaN/inf actions; refusing to return them")
            chunks.append(
                ActionChunk(
                    actions=robot_units,
                    action_names=self.metadata["action_names"],
                    control_hz=self.metadata["control_hz"],
                    subtask=prompts[i],
                    chunk_id=next(self._chunk_ids),
                )
            )
        return chunks

    # ---- System 2 --------------------------------------------------------------------------------
    def subtask(self, obs: ObservationLike, task: str, max_tokens: int = 24) -> str:
        """Greedy-decode the next subtask for `task` ("Task: …, State: …;\\nSubtask: " → text up to EOS)."""
        return self.subtask_batch([obs], [task], max_tokens=max_tokens)[0]

    def subtask_batch(
        self, observations: Sequence[ObservationLike], tasks: Sequence[str], max_tokens: int = 24
    ) -> list[str]:
        if max_tokens < 1:
            raise PolicyInputError("max_tokens must be >= 1")
        batch = self.make_batch(observations, tasks, system2=True)
        with self._lock:
            if self.fast is not None and max_tokens <= self.fast.max_new_tokens:
                ids = self.fast.generate_subtask(batch, max_new_tokens=max_tokens, eos_id=self.tokenizer.eos_id)
            else:
                ids = self.model.generate_subtask(batch, max_new_tokens=max_tokens, eos_id=self.tokenizer.eos_id)
        return [self.tokenizer.decode(seq).strip() for seq in ids]


def _preset(name: str, **overrides: Any) -> Pi05Config:
    return preset(name, **overrides)


def randomize_adaptive_norms(model: Pi05Model, seed: int, std: float = 0.02) -> None:
    """Give the zero-initialised AdaRMS layers small random weights.

    A freshly initialised expert has closed residual gates, so actions would not depend on the images or
    the prompt at all; random policies used in tests and benchmarks should exercise the whole network.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.expert.named_parameters():
            if ".dense." in name:
                param.copy_(torch.randn(param.shape, generator=generator, device="cpu") * std)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _readme(metadata: Mapping[str, Any], config: Pi05Config) -> str:
    return (
        "# hearth π₀.₅ checkpoint\n\n"
        f"- preset: {config.preset}\n"
        f"- cameras: {', '.join(metadata['camera_names'])} ({config.image_size} px)\n"
        f"- state ({len(metadata['state_names'])}): {', '.join(metadata['state_names'])}\n"
        f"- actions ({len(metadata['action_names'])}): {', '.join(metadata['action_names'])}\n"
        f"- action horizon: {config.action_horizon} at {metadata['control_hz']} Hz\n"
        f"- robot interface: {metadata.get('robot_type') or 'robot type not recorded'}, "
        f"v{metadata.get('robot_interface_version') or '1 (not recorded)'}\n\n"
        "Files: model.safetensors (weights), config.json (model config + robot metadata), "
        "norm_stats.json (openpi layout), tokenizer.json (prompt tokenizer).\n"
        "Load with `policy.inference.Pi05Policy.from_checkpoint(path)`.\n"
    )
