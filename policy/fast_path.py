"""Fast π₀.₅ inference: the model's own methods over static buffers, replayed as CUDA graphs (gpt-fast style).

Nothing here is a second model. `FastPi05` owns fixed-shape input buffers and static KV caches and calls the
plain `Pi05Model` pieces (`prefix_cache`, `denoise`, `decode_prefix`, `decode_step`) on them; on CUDA each
piece is captured once per shape as a CUDA graph and afterwards only replayed, which removes the per-kernel
launch cost that dominates eager PyTorch on this model (the pattern of gpt-fast's `generate.py`,
pytorch-labs/gpt-fast). Why each shortcut leaves the results unchanged:

- Shapes are fixed per `ShapeKey`: batches are padded up to a bucket (1/2/4/8) with copies of their first row,
  whose outputs are dropped; prompts are cut (or padded) to the smallest prompt bucket that holds every valid
  token — prompts are right-padded and padding is masked, so only masked columns go.
- The prefix's keys/values go into a preallocated `StaticKVCache`; the denoising loop reads it in place.
- The prefix pass is one graph per (batch, cameras, prompt); the whole Euler loop, RTC guidance (its autograd
  vector-Jacobian product) included, is one graph per shape and guidance on/off, reading that prefix's cache: no
  host synchronisation inside a chunk. The schedule's time conditions are computed once (`time_conditions`).
- Q/K/V and gate/up are fused at construction (gemma.py `fuse_rows`; the state dict is unchanged).
- System 2: the prompt and a fixed number of generated tokens share one static cache; one captured decode step
  writes a token's keys/values at its slot and is replayed per token; EOS is read every `eos_check_every` tokens.

Without CUDA (or with `graphs=False`) the same buffer code runs eagerly, which is how CPU tests hold it equal to
`Pi05Model.sample_actions` / `generate_subtask`. Reading a batch's longest prompt (to pick its bucket) is the
one host read, before the chunk starts.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from policy.model.gemma import StaticKVCache
from policy.model.pi05 import Pi05Batch, Pi05Model, rtc_guide

logger = logging.getLogger(__name__)

BATCH_BUCKETS = (1, 2, 4, 8)
CAPTURE_WARMUP_RUNS = 2  # eager runs on a side stream before capture (cuBLAS/autograd lazy initialisation)


def prompt_buckets(max_token_len: int) -> tuple[int, ...]:
    """Prompt lengths graphs are built for: powers of two from 16 below `max_token_len`, then the maximum."""
    return tuple(sorted({n for n in (16, 32, 64, 128) if n < max_token_len} | {max_token_len}))


def bucket_for(size: int, buckets: Iterable[int]) -> int:
    """The smallest bucket >= size."""
    for bucket in sorted(buckets):
        if bucket >= size:
            return bucket
    raise ValueError(f"{size} exceeds the largest bucket {max(buckets)}")


@dataclass(frozen=True)
class ShapeKey:
    """Everything a graph's shapes depend on."""

    batch: int
    cameras: int
    prompt: int
    guided: bool = False  # RTC guidance (System 1 only)


class Replay:
    """Calls `fn()` (which reads and writes fixed buffers); with `capture`, records it once as a CUDA graph.

    After capture, a call only replays the graph and returns the tensors the captured call returned. All graphs
    of one `FastPi05` share one memory pool (they run one at a time), so a returned tensor may be overwritten by
    the next replay of any of them: callers copy it out at once. Everything that must outlive a replay (inputs,
    KV caches, decoded tokens) is a buffer allocated outside the pool.
    """

    def __init__(self, fn: Callable[[], Any], capture: bool, pool: Any = None):
        self.fn = fn
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: Any = None
        if capture:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(CAPTURE_WARMUP_RUNS):
                    fn()
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, pool=pool):
                self.outputs = fn()

    def __call__(self) -> Any:
        if self.graph is None:
            return self.fn()
        self.graph.replay()
        return self.outputs


def _fit_rows(x: Tensor, rows: int) -> Tensor:
    """Pad dim 0 up to `rows` with copies of row 0 (their results are discarded)."""
    extra = rows - x.shape[0]
    return x if extra == 0 else torch.cat([x, x[:1].expand(extra, *x.shape[1:])])


def _fit_columns(x: Tensor, columns: int) -> Tensor:
    """Cut or zero-pad dim 1 to `columns` (right-padded prompts: only padding is cut)."""
    if x.shape[1] >= columns:
        return x[:, :columns]
    return torch.cat([x, x.new_zeros(x.shape[0], columns - x.shape[1], *x.shape[2:])], dim=1)


class _PrefixInputs:
    """Static input buffers of a prefix pass: images, camera mask, prompt, state."""

    def __init__(self, model: Pi05Model, key: ShapeKey):
        config, device = model.config, model.device
        size = config.image_size
        self.images = torch.zeros(key.batch, key.cameras, 3, size, size, dtype=model.dtype, device=device)
        self.image_masks = torch.ones(key.batch, key.cameras, dtype=torch.bool, device=device)
        self.tokens = torch.zeros(key.batch, key.prompt, dtype=torch.long, device=device)
        self.token_mask = torch.zeros(key.batch, key.prompt, dtype=torch.bool, device=device)
        self.token_mask[:, 0] = True
        self.state = torch.zeros(key.batch, config.max_state_dim, device=device)
        self.needs_state = model.num_state_tokens > 0
        self.length = model.num_image_tokens(key.cameras) + key.prompt

    def load(self, batch: Pi05Batch, rows: slice) -> None:
        """Copy rows of `batch` in, padded to this shape (the batch's prompts must fit the bucket).

        Inference batches only: CE targets (`token_ar_mask`, `token_loss_mask`) are not read.
        """
        size = self.tokens.shape[0]
        self.images.copy_(_fit_rows(batch.images[rows], size))
        self.image_masks.copy_(_fit_rows(batch.image_masks[rows], size))
        self.tokens.copy_(_fit_rows(_fit_columns(batch.tokens[rows], self.tokens.shape[1]), size))
        self.token_mask.copy_(_fit_rows(_fit_columns(batch.token_mask[rows], self.tokens.shape[1]), size))
        if self.needs_state:
            if batch.state is None:
                raise ValueError(
                    "this model has a continuous state token (config.state_token); the batch needs `state`"
                )
            self.state.copy_(_fit_rows(batch.state[rows], size))

    def batch(self) -> Pi05Batch:
        state = self.state if self.needs_state else None
        return Pi05Batch(self.images, self.image_masks, self.tokens, self.token_mask, state=state)


class PrefixGraph:
    """System 1's prefix pass for one shape: input buffers -> static KV cache and valid mask.

    One per (batch, cameras, prompt): the plain and the RTC-guided loops of that shape read the same cache.
    """

    def __init__(self, fast: FastPi05, key: ShapeKey):
        model, device = fast.model, fast.model.device
        self.model = model
        self.inputs = _PrefixInputs(model, key)
        self.cache = StaticKVCache.allocate(model.config.vlm, key.batch, self.inputs.length, model.dtype, device)
        self.pad = torch.zeros(key.batch, self.inputs.length, dtype=torch.bool, device=device)
        self.run = Replay(fast.compiled(self._run), fast.graphs, fast.pool)

    def _run(self) -> None:
        with torch.no_grad():
            _, pad = self.model.prefix_cache(self.inputs.batch(), cache=self.cache)
            self.pad.copy_(pad)


class ChunkGraphs:
    """System 1 for one ShapeKey: the shape's prefix pass, then the Euler loop (plain or RTC-guided)."""

    def __init__(self, fast: FastPi05, key: ShapeKey, prefix: PrefixGraph):
        model, config, device = fast.model, fast.model.config, fast.model.device
        self.model, self.key, self.fast = model, key, fast
        self.inputs, self.prefix = prefix.inputs, prefix.run
        self.prefix_graph = prefix
        action_shape = (key.batch, config.action_horizon, config.max_action_dim)
        self.noise = torch.zeros(action_shape, device=device)
        self.prev = torch.zeros(action_shape, device=device)
        self.prev_len = torch.zeros(key.batch, dtype=torch.long, device=device)
        self.delay = torch.zeros(key.batch, dtype=torch.long, device=device)
        self.denoise = Replay(fast.compiled(self._denoise), fast.graphs, fast.pool)

    def _denoise(self) -> Tensor:
        horizon = self.model.config.action_horizon
        with torch.no_grad():
            guide = rtc_guide(self.prev, self.prev_len, self.delay, horizon) if self.key.guided else None
            return self.model.denoise(
                self.prefix_graph.cache.as_past(),
                self.prefix_graph.pad,
                self.noise,
                self.inputs.batch().state,
                self.fast.num_steps,
                guide,
                self.fast.max_guidance_weight,
                conds=self.fast.conds,
            )


class DecodeGraphs:
    """System 2 for one ShapeKey: prefix pass (first token) into a static cache, then one reusable decode step."""

    def __init__(self, fast: FastPi05, key: ShapeKey):
        model, device = fast.model, fast.model.device
        self.model = model
        self.inputs = _PrefixInputs(model, key)
        self.prefix_len = self.inputs.length
        length = self.prefix_len + fast.max_new_tokens
        self.cache = StaticKVCache.allocate(model.config.vlm, key.batch, length, model.dtype, device)
        self.visible = torch.zeros(key.batch, length, dtype=torch.bool, device=device)
        self.generated = torch.zeros(key.batch, fast.max_new_tokens, dtype=torch.long, device=device)
        self.token = torch.zeros(key.batch, dtype=torch.long, device=device)
        self.position = torch.zeros(key.batch, dtype=torch.long, device=device)
        self.slot = torch.zeros(1, dtype=torch.long, device=device)
        self.prefix = Replay(fast.compiled(self._prefix), fast.graphs, fast.pool)
        self.step = Replay(fast.compiled(self._step), fast.graphs, fast.pool)

    def _prefix(self) -> None:
        with torch.no_grad():
            first, pad = self.model.decode_prefix(self.inputs.batch(), self.cache)
            self.visible.zero_()
            self.visible[:, : self.prefix_len] = pad
            self.generated[:, 0] = first
            self.token.copy_(first)
            self.position.copy_(pad.sum(-1))  # the first generated token's RoPE position
            self.slot.fill_(self.prefix_len)

    def _step(self) -> None:
        """Feed the last token (keys/values at `slot`), write the next one at generated[slot - Lp + 1]."""
        with torch.no_grad():
            self.visible.index_fill_(1, self.slot, True)
            following = self.model.decode_step(self.cache, self.visible, self.token, self.position, self.slot)
            self.generated.index_copy_(1, self.slot - self.prefix_len + 1, following[:, None])
            self.token.copy_(following)
            self.position.add_(1)
            self.slot.add_(1)


class FastPi05:
    """Fixed-shape, graph-captured inference around one `Pi05Model` (fused in place at construction).

    `graphs` defaults to True on CUDA. `compile_mode` additionally wraps each piece in `torch.compile` before
    capture (e.g. "max-autotune-no-cudagraphs"; measure before turning it on). Shapes are built on first use or
    by `warmup`; not thread-safe (Pi05Policy calls it under its lock).
    """

    def __init__(
        self,
        model: Pi05Model,
        *,
        graphs: bool | None = None,
        compile_mode: str | None = None,
        batch_buckets: Iterable[int] = BATCH_BUCKETS,
        prompt_lengths: Iterable[int] | None = None,
        num_steps: int | None = None,
        max_guidance_weight: float = 5.0,
        max_new_tokens: int = 32,
        eos_check_every: int = 4,
    ):
        if max_new_tokens < 1 or eos_check_every < 1:
            raise ValueError("max_new_tokens and eos_check_every must be >= 1")
        self.model = model.eval()
        self.graphs = model.device.type == "cuda" if graphs is None else graphs
        if self.graphs and model.device.type != "cuda":
            raise ValueError("CUDA graphs need the model on a CUDA device")
        if self.graphs and compile_mode in ("reduce-overhead", "max-autotune"):
            raise ValueError(
                f"compile_mode={compile_mode!r} makes its own CUDA graphs; with graphs=True use "
                "'max-autotune-no-cudagraphs' or 'default' (or graphs=False to let torch.compile capture)"
            )
        self.compile_mode = compile_mode
        self.batch_buckets = tuple(sorted(batch_buckets))
        self.prompt_buckets = tuple(sorted(prompt_lengths or prompt_buckets(model.config.max_token_len)))
        self.num_steps = num_steps or model.config.num_steps
        self.max_guidance_weight = max_guidance_weight
        self.max_new_tokens = max_new_tokens
        self.eos_check_every = eos_check_every
        model.fuse_projections()
        with torch.no_grad():
            self.conds = model.time_conditions(self.num_steps)
        self.pool = torch.cuda.graph_pool_handle() if self.graphs else None
        self._prefixes: dict[ShapeKey, PrefixGraph] = {}
        self._chunks: dict[ShapeKey, ChunkGraphs] = {}
        self._decoders: dict[ShapeKey, DecodeGraphs] = {}

    def compiled(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        return fn if self.compile_mode is None else torch.compile(fn, mode=self.compile_mode, dynamic=False)

    @property
    def parts_built(self) -> int:
        return len(self._prefixes) + len(self._chunks) + len(self._decoders)

    # ---- keys ------------------------------------------------------------------------------------------
    def shape_key(self, batch: Pi05Batch, rows: slice, guided: bool = False) -> ShapeKey:
        """The shape `rows` of `batch` run at: batch and prompt buckets, camera count, guidance."""
        n = len(range(*rows.indices(batch.batch_size)))
        longest = int(batch.token_mask[rows].sum(-1).max())  # the one host read, before the chunk
        return ShapeKey(
            bucket_for(n, self.batch_buckets),
            int(batch.images.shape[1]),
            bucket_for(longest, self.prompt_buckets),
            guided,
        )

    def _row_slices(self, batch_size: int) -> list[slice]:
        """Batches larger than the largest bucket run in pieces of that size."""
        step = self.batch_buckets[-1]
        return [slice(start, min(batch_size, start + step)) for start in range(0, batch_size, step)]

    def chunk_graphs(self, key: ShapeKey) -> ChunkGraphs:
        """System 1's buffers and (on CUDA) graphs for `key`, built on first use."""
        if key not in self._chunks:
            shared = dataclasses.replace(key, guided=False)
            if shared not in self._prefixes:
                self._prefixes[shared] = PrefixGraph(self, shared)
            self._chunks[key] = ChunkGraphs(self, key, self._prefixes[shared])
        return self._chunks[key]

    def _decode_graphs(self, key: ShapeKey) -> DecodeGraphs:
        if key not in self._decoders:
            self._decoders[key] = DecodeGraphs(self, key)
        return self._decoders[key]

    # ---- System 1 --------------------------------------------------------------------------------------
    def sample_actions(
        self,
        batch: Pi05Batch,
        noise: Tensor | None = None,
        prev_actions: Tensor | None = None,
        prev_lengths: Tensor | None = None,
        delay: Tensor | None = None,
    ) -> Tensor:
        """`Pi05Model.sample_actions` with this object's step count: normalized [B, H, max_action_dim].

        prev_actions [B, k <= H, A] (normalized), prev_lengths [B] and delay [B] as checked by the caller
        (Pi05Policy checks them on the host) turn on RTC guidance.
        """
        config = self.model.config
        b, device = batch.batch_size, self.model.device
        shape = (b, config.action_horizon, config.max_action_dim)
        noise = torch.randn(shape, device=device) if noise is None else noise
        if tuple(noise.shape) != shape:
            raise ValueError(f"noise must have shape {shape}, got {tuple(noise.shape)}")
        guided = prev_actions is not None
        if guided:
            if prev_lengths is None:
                prev_lengths = torch.full((b,), prev_actions.shape[1], dtype=torch.long, device=device)
            if delay is None:
                delay = torch.zeros(b, dtype=torch.long, device=device)
            prev_actions = _fit_columns(prev_actions.float(), config.action_horizon)
        outputs = []
        for rows in self._row_slices(b):
            graphs = self.chunk_graphs(self.shape_key(batch, rows, guided))
            size = graphs.key.batch
            graphs.inputs.load(batch, rows)
            graphs.noise.copy_(_fit_rows(noise[rows], size))
            if guided:
                graphs.prev.copy_(_fit_rows(prev_actions[rows], size))  # type: ignore[index]
                graphs.prev_len.copy_(_fit_rows(prev_lengths[rows], size))  # type: ignore[index]
                graphs.delay.copy_(_fit_rows(delay[rows], size))  # type: ignore[index]
            graphs.prefix()
            actions = graphs.denoise()
            outputs.append(actions[: rows.stop - rows.start].clone())
        return torch.cat(outputs) if len(outputs) > 1 else outputs[0]

    # ---- System 2 --------------------------------------------------------------------------------------
    def generate_subtask(
        self, batch: Pi05Batch, max_new_tokens: int = 24, eos_id: int | None = None
    ) -> list[list[int]]:
        """`Pi05Model.generate_subtask` with a static cache: greedy tokens up to EOS (not returned)."""
        if max_new_tokens > self.max_new_tokens:
            raise ValueError(f"at most {self.max_new_tokens} new tokens (FastPi05(max_new_tokens=...))")
        eos = self.model.config.eos_token_id if eos_id is None else eos_id
        results: list[list[int]] = []
        for rows in self._row_slices(batch.batch_size):
            graphs = self._decode_graphs(self.shape_key(batch, rows))
            graphs.inputs.load(batch, rows)
            graphs.prefix()
            for count in range(1, max_new_tokens):
                # EOS read on the host every few tokens only; rows that ended keep decoding harmlessly meanwhile
                if count % self.eos_check_every == 0 and bool((graphs.generated[:, :count] == eos).any(1).all()):
                    break
                graphs.step()
            for sequence in graphs.generated[: rows.stop - rows.start, :max_new_tokens].tolist():
                results.append(sequence[: sequence.index(eos)] if eos in sequence else sequence)
        return results

    # ---- start-up --------------------------------------------------------------------------------------
    def warmup(
        self,
        num_cameras: int,
        batch_sizes: Iterable[int] | None = None,
        prompt_lengths: Iterable[int] | None = None,
        guided: Iterable[bool] = (False, True),
        system2: bool = True,
    ) -> float:
        """Build (on CUDA: capture) every shape a worker will meet, so no request pays for it; returns seconds."""
        started = time.perf_counter()
        for size in batch_sizes or self.batch_buckets:
            for prompt in prompt_lengths or self.prompt_buckets:
                for rtc in guided:
                    self.chunk_graphs(ShapeKey(size, num_cameras, prompt, rtc))
                if system2:
                    self._decode_graphs(ShapeKey(size, num_cameras, prompt))
        if self.graphs:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        logger.info(
            "fast path ready: %d parts (prefix passes, Euler loops, decoders) in %.1f s (graphs=%s)",
            self.parts_built,
            seconds,
            self.graphs,
            extra={"parts": self.parts_built, "warmup_s": round(seconds, 2)},
        )
        return seconds
