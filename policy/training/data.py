"""Training data held as arrays: every frame decoded, resized and tokenized once, then batched by indexing.

Why: the sim datasets we train on are small (tens of thousands of frames at 64 px), so decoding video every step
would cost more than the model on a CPU and starve a GPU. `TrainingArrays` can be saved to one `.npz` file and
moved to another machine (the GPU recipe trains from it without the simulator or the video decoder).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from policy.action_frame import ActionFrame, apply_to_model
from policy.model.pi05 import Pi05Batch
from policy.training.batching import ExampleEncoder, TrainSample

logger = logging.getLogger(__name__)


def resize_uint8(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [size, size, 3] through the policy's own preprocessing (resize with pad).

    Training must see exactly the pixels inference will feed the model, so this reuses
    policy.inference.resize_with_pad and only adds the (lossless at these values) round trip to uint8.
    """
    if image.shape[0] == size and image.shape[1] == size:
        return np.ascontiguousarray(image)
    from policy.inference import image_to_tensor, resize_with_pad

    x = resize_with_pad(image_to_tensor(image, "camera"), size)
    return ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def episode_samples(
    images: dict[str, np.ndarray],
    states: np.ndarray,
    actions: np.ndarray,
    subtasks: Sequence[str],
    task: str,
    horizon: int,
    frame: ActionFrame | None = None,
) -> list[TrainSample]:
    """One episode's frames as training samples: the chunk at t is actions[t : t + H].

    Steps past the episode's end repeat its last action and are flagged in `action_is_pad` (LeRobot's
    convention), so the flow loss ignores them. `images` maps camera -> [T, S, S, 3] uint8 at model size.
    With a `frame`, each chunk is expressed relative to the state at t (policy/action_frame.py).
    """
    length = actions.shape[0]
    samples = []
    for t in range(length):
        end = min(t + horizon, length)
        chunk = np.concatenate([actions[t:end], np.repeat(actions[-1:], horizon - (end - t), axis=0)])
        samples.append(
            TrainSample(
                images={c: frames[t] for c, frames in images.items()},
                state=np.asarray(states[t], np.float32),
                actions=apply_to_model(frame, chunk, states[t]),
                action_is_pad=np.arange(horizon) >= end - t,
                task=task,
                subtask=subtasks[t] or "",
            )
        )
    return samples


@dataclass
class TrainingArrays:
    camera_names: list[str]
    images: np.ndarray  # uint8 [N, n_cam, S, S, 3]
    actions: np.ndarray  # float32 [N, H, A] normalized, zero-padded to max_action_dim
    action_dim: int  # real action dims (the rest is padding)
    action_is_pad: np.ndarray  # bool [N, H]
    s1_tokens: np.ndarray  # int64 [N, L]
    s1_mask: np.ndarray
    s1_loss: np.ndarray
    s2_tokens: np.ndarray  # int64 [N, L] (rows without a subtask are all padding)
    s2_mask: np.ndarray
    s2_loss: np.ndarray
    has_subtask: np.ndarray  # bool [N]
    episode_index: np.ndarray  # int64 [N]
    # float32 [N, max_state_dim] normalized, zero-padded, for the state token; None in data prepared before it existed
    states: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @classmethod
    def build(
        cls,
        samples: Iterable[tuple[int, TrainSample]],
        encoder: ExampleEncoder,
        camera_names: Sequence[str],
        image_size: int,
    ) -> TrainingArrays:
        images, actions, pads, episodes, states = [], [], [], [], []
        s1, s2, has = [], [], []
        empty = None
        for episode, sample in samples:
            missing = [c for c in camera_names if c not in sample.images]
            if missing:
                raise ValueError(f"sample of episode {episode} lacks cameras {missing}; it has {sorted(sample.images)}")
            images.append(np.stack([resize_uint8(sample.images[c], image_size) for c in camera_names]))
            ex1, ex2, padded = encoder.encode(sample)
            if empty is None:
                empty = type(ex1)(np.zeros_like(ex1.tokens), np.zeros_like(ex1.mask), np.zeros_like(ex1.loss_mask))
            s1.append(ex1)
            s2.append(ex2 if ex2 is not None else empty)
            has.append(ex2 is not None)
            actions.append(padded)
            states.append(encoder.normalized_state(sample))
            pads.append(np.asarray(sample.action_is_pad, bool))
            episodes.append(episode)
        if not images:
            raise ValueError("the dataset yielded no training samples")
        action_dim = int(encoder.norm_stats["actions"].dim)
        return cls(
            camera_names=list(camera_names),
            images=np.stack(images),
            actions=np.stack(actions).astype(np.float32),
            action_dim=action_dim,
            action_is_pad=np.stack(pads),
            s1_tokens=np.stack([e.tokens for e in s1]),
            s1_mask=np.stack([e.mask for e in s1]),
            s1_loss=np.stack([e.loss_mask for e in s1]),
            s2_tokens=np.stack([e.tokens for e in s2]),
            s2_mask=np.stack([e.mask for e in s2]),
            s2_loss=np.stack([e.loss_mask for e in s2]),
            has_subtask=np.asarray(has, bool),
            episode_index=np.asarray(episodes, np.int64),
            states=np.stack(states),
        )

    # ---- files -----------------------------------------------------------------------------------
    _ARRAYS = (
        "images",
        "actions",
        "action_is_pad",
        "s1_tokens",
        "s1_mask",
        "s1_loss",
        "s2_tokens",
        "s2_mask",
        "s2_loss",
        "has_subtask",
        "episode_index",
    )

    def save(self, path: Path, compress: bool = True) -> None:
        """One .npz; `compress=False` trades disk for speed (gigabytes of frames on a machine in a hurry)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"camera_names": self.camera_names, "action_dim": self.action_dim})
        tmp = path.with_name(path.name + ".tmp.npz")
        writer = np.savez_compressed if compress else np.savez
        optional = {"states": self.states} if self.states is not None else {}
        writer(tmp, meta=np.array(meta), **{k: getattr(self, k) for k in self._ARRAYS}, **optional)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> TrainingArrays:
        with np.load(Path(path), allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            states = data["states"] if "states" in data.files else None
            return cls(
                camera_names=meta["camera_names"],
                action_dim=int(meta["action_dim"]),
                states=states,
                **{k: data[k] for k in cls._ARRAYS},
            )

    # ---- batching --------------------------------------------------------------------------------
    def to_torch(self, device: torch.device) -> TorchArrays:
        return TorchArrays(
            images=torch.from_numpy(self.images).to(device),
            actions=torch.from_numpy(self.actions).to(device),
            action_mask=(torch.arange(self.actions.shape[-1]) < self.action_dim).to(device),
            action_is_pad=torch.from_numpy(self.action_is_pad).to(device),
            s1=tuple(torch.from_numpy(a).to(device) for a in (self.s1_tokens, self.s1_mask, self.s1_loss)),
            s2=tuple(torch.from_numpy(a).to(device) for a in (self.s2_tokens, self.s2_mask, self.s2_loss)),
            has_subtask=torch.from_numpy(self.has_subtask).to(device),
            states=torch.from_numpy(self.states).to(device) if self.states is not None else None,
        )


@dataclass
class TorchArrays:
    """TrainingArrays on the training device; `batch` assembles a Pi05Batch by pure tensor indexing."""

    images: torch.Tensor
    actions: torch.Tensor
    action_mask: torch.Tensor
    action_is_pad: torch.Tensor
    s1: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    s2: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    has_subtask: torch.Tensor
    states: torch.Tensor | None = None

    def batch(self, indices: torch.Tensor, system2: torch.Tensor) -> Pi05Batch:
        """indices [B] into the frames; system2 [B] bool asks for the subtask example (where one exists)."""
        device = self.images.device
        indices = indices.to(device)
        use_s2 = system2.to(device) & self.has_subtask[indices]
        pick = use_s2[:, None]
        tokens = torch.where(pick, self.s2[0][indices], self.s1[0][indices])
        mask = torch.where(pick, self.s2[1][indices], self.s1[1][indices])
        loss = torch.where(pick, self.s2[2][indices], self.s1[2][indices])
        images = self.images[indices].to(torch.float32).movedim(-1, -3) / 127.5 - 1.0  # [B, n_cam, 3, S, S]
        b = indices.shape[0]
        return Pi05Batch(
            images=images,
            image_masks=torch.ones(b, images.shape[1], dtype=torch.bool, device=device),
            tokens=tokens,
            token_mask=mask,
            token_ar_mask=loss.clone(),
            token_loss_mask=loss,
            actions=self.actions[indices],
            action_mask=self.action_mask[None].expand(b, -1),
            action_is_pad=self.action_is_pad[indices],
            has_actions=~use_s2,
            state=self.states[indices] if self.states is not None else None,
        )


def decoded_prompt_heads(s1_tokens: np.ndarray, decode, head: int) -> tuple[list[str], np.ndarray]:
    """The first ``head`` tokens of every System-1 prompt, each distinct opening decoded once, and for every row
    the index of its opening. Why: a hundred thousand frames share a few thousand openings ("Task: {subtask},
    State: " and the first state bins), so decoding each once takes a fraction of a second."""
    heads, inverse = np.unique(s1_tokens[:, :head], axis=0, return_inverse=True)
    return [decode([int(t) for t in tokens if t]) for tokens in heads], np.ravel(inverse)


def subtask_repeats(s1_tokens: np.ndarray, decode, weights: Mapping[str, int], head: int = 12) -> np.ndarray:
    """How many times each frame is drawn per pass: ``weights[prefix]`` for a frame whose subtask (its System-1
    prompt ``Task: {subtask}, State: ...``) starts with ``prefix``, else 1.

    Why: a skill's share of the frames is set by how long the expert spends on it (the sim's drives are half the
    frames), not by how hard it is to learn; repeating the frames of a hard skill gives it more of each batch
    without collecting anything. `decode` turns token ids into text; only the first ``head`` tokens are read,
    enough for "Task: " and the subtask's first words. A prefix no frame matches is an error (a typo would
    otherwise train on the unweighted data in silence).
    """
    repeats = np.ones(len(s1_tokens), np.int64)
    if not weights:
        return repeats
    texts, inverse = decoded_prompt_heads(s1_tokens, decode, head)
    matched = dict.fromkeys(weights, 0)
    for i, text in enumerate(texts):
        subtask = text.removeprefix("Task: ")
        for prefix, times in weights.items():
            if subtask.startswith(prefix):
                rows = inverse == i
                repeats[rows] = times
                matched[prefix] += int(rows.sum())
                break
    missing = [prefix for prefix, rows in matched.items() if rows == 0]
    if missing:
        raise ValueError(f"subtask_weights: no frame's subtask starts with {missing}")
    return repeats


def weighted_order(repeats: np.ndarray) -> torch.Tensor:
    """The frame index of each position in a pass where frame i appears ``repeats[i]`` times: `batch_indices`
    walks positions of this (longer) pass, so weighted sampling stays a pure function of the step."""
    return torch.from_numpy(np.repeat(np.arange(len(repeats), dtype=np.int64), repeats))


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def batch_indices(n: int, batch_size: int, step: int, seed: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """This rank's indices for global step `step`: a deterministic walk through per-epoch permutations.

    Pure function of its arguments, so a resumed run (or any rank) sees exactly the batches it would have seen.
    """
    start = step * batch_size
    out = []
    position = start
    end = start + batch_size
    while position < end:
        epoch, offset = divmod(position, n)
        take = min(end - position, n - offset)
        out.append(epoch_permutation(n, seed, epoch)[offset : offset + take])
        position += take
    global_batch = torch.cat(out)
    per_rank = batch_size // world_size
    return global_batch[rank * per_rank : (rank + 1) * per_rank]
