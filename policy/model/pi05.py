"""π₀.₅: SigLIP + PaliGemma VLM (prefix) jointly attending with a flow-matching action expert (suffix).

Conventions follow openpi exactly (Physical-Intelligence/openpi src/openpi/models/pi0.py): t = 1 is noise, t = 0 is data;
x_t = t·noise + (1-t)·actions, the expert predicts u = noise - actions; the prefix (images + prompt) is
bidirectional and never sees the suffix; the 50 action tokens form one block that sees the valid prefix
and itself; positions are cumsum(valid) - 1. Beyond openpi we add what the paper's hierarchy needs:
cross-entropy on text targets through the tied LM head (System-2 subtasks, FAST tokens), knowledge
insulation, greedy subtask decoding with a KV cache, and real-time-chunking guidance. Optionally
(`Pi05Config.state_token`) the suffix starts with π₀'s continuous state token: prefix | state | actions.

Inference is written as pieces with fixed shapes and no host synchronisation (`prefix_cache`, `denoise`,
`decode_prefix`, `decode_step`), so policy/fast_path.py can run the very same methods over static buffers and
capture them as CUDA graphs; `sample_actions` and `generate_subtask` are the plain (eager) drivers.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from policy.model.config import Pi05Config
from policy.model.gemma import GemmaStack, KVCache, StaticKVCache, joint_forward, make_attn_mask
from policy.model.siglip import SiglipVisionTower


@dataclass
class Pi05Batch:
    """Model inputs, already normalized, tokenized and padded.

    images [B, n_cam, 3, S, S] float in [-1, 1]; image_masks [B, n_cam] bool (False = absent camera);
    tokens [B, L] int64 right-padded; token_mask [B, L] bool.
    Training extras: token_ar_mask [B, L] bool (True on causal target tokens, which start new blocks),
    token_loss_mask [B, L] bool (tokens predicted by the CE loss), actions [B, H, A] normalized and padded,
    action_mask [B, A] bool (real action dims), action_is_pad [B, H] bool (steps past an episode's end),
    has_actions [B] bool (samples that contribute to the flow loss, e.g. False for System-2-only samples).
    state [B, max_state_dim] float: the normalized, zero-padded robot state, the same vector the prompt
    discretizes; only models with `state_token` read it (and then require it).
    """

    images: Tensor
    image_masks: Tensor
    tokens: Tensor
    token_mask: Tensor
    token_ar_mask: Tensor | None = None
    token_loss_mask: Tensor | None = None
    actions: Tensor | None = None
    action_mask: Tensor | None = None
    action_is_pad: Tensor | None = None
    has_actions: Tensor | None = None
    state: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int(self.tokens.shape[0])

    def to(self, device: torch.device | str) -> Pi05Batch:
        moved = {
            f.name: (getattr(self, f.name).to(device) if getattr(self, f.name) is not None else None)
            for f in dataclasses.fields(self)
        }
        return Pi05Batch(**moved)


def posemb_sincos(t: Tensor, dim: int, min_period: float, max_period: float) -> Tensor:
    """[B] times -> [B, dim] = [sin, cos] over geometric periods (openpi `posemb_sincos`)."""
    if dim % 2:
        raise ValueError("time embedding width must be even")
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=torch.float64, device=t.device)
    period = min_period * (max_period / min_period) ** fraction
    angles = t.to(torch.float64)[:, None] * (2.0 * math.pi / period)[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).to(torch.float32)


def rtc_guide(prev: Tensor, prev_len: Tensor, delay: Tensor, horizon: int) -> tuple[Tensor, Tensor]:
    """Guidance target [B, H, A] (the previous chunk's actions, zero-padded to H) and weights [B, H] for RTC.

    prev [B, k <= H, A] normalized; prev_len [B] how many of them are real; delay [B] how many run before the
    new chunk arrives. Pure tensor code (no checks that read values), so it can run inside a CUDA graph.
    """
    target = F.pad(prev.float(), (0, 0, 0, horizon - prev.shape[1]))
    return target, rtc_prefix_weights(prev_len, delay, horizon)


def rtc_prefix_weights(prev_len: Tensor, delay: Tensor, horizon: int) -> Tensor:
    """Soft inpainting mask of real-time chunking (RTC paper eq. 5), [B, H].

    1 for the first `delay` steps (they will run from the previous chunk anyway), then an exponential
    decay c·(e^c − 1)/(e − 1) with c = (k − i)/(k − d + 1) over the rest of the previous chunk's
    unexecuted k actions, and 0 beyond them.
    """
    i = torch.arange(horizon, device=prev_len.device, dtype=torch.float32)[None, :]
    k = prev_len.to(torch.float32)[:, None]
    d = delay.to(torch.float32)[:, None]
    c = ((k - i) / (k - d + 1.0)).clamp(min=0.0, max=1.0)
    ramp = c * torch.expm1(c) / (math.e - 1.0)
    weights = torch.where(i < d, torch.ones_like(ramp), ramp)
    return torch.where(i < k, weights, torch.zeros_like(weights))


class Pi05Model(nn.Module):
    """The network. Inputs/outputs are normalized tensors; see policy.inference for robot units."""

    def __init__(self, config: Pi05Config):
        super().__init__()
        self.config = config
        vision, vlm, expert = config.vision, config.vlm, config.expert
        self.vision = SiglipVisionTower(vision)
        self.projector = nn.Linear(vision.width, vlm.width)
        self.vlm = GemmaStack(vlm, vocab_size=config.vocab_size, adaptive=False, eps=config.rms_norm_eps)
        self.expert = GemmaStack(expert, vocab_size=None, adaptive=True, eps=config.rms_norm_eps)
        self.expert_lm_head = nn.Linear(expert.width, config.vocab_size, bias=False) if config.expert_lm_head else None
        self.action_in_proj = nn.Linear(config.max_action_dim, expert.width)
        self.action_out_proj = nn.Linear(expert.width, config.max_action_dim)
        self.time_mlp_in = nn.Linear(expert.width, expert.width)
        self.time_mlp_out = nn.Linear(expert.width, expert.width)
        self.state_proj = nn.Linear(config.max_state_dim, expert.width) if config.state_token else None
        self._init_weights()

    def _init_weights(self) -> None:
        # Gemma-style small normal init for embeddings (they are multiplied by sqrt(width) on use);
        # AdaRMS dense layers stay zero-initialised (set in AdaRMSNorm).
        if self.vlm.embed_tokens is not None and self.vlm.embed_tokens.weight.device.type != "meta":
            nn.init.normal_(self.vlm.embed_tokens.weight, std=0.02)

    # ---- helpers ---------------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self.action_in_proj.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.action_in_proj.weight.device

    @property
    def num_state_tokens(self) -> int:
        """Suffix tokens before the action tokens: 1 with the continuous state token, else 0."""
        return 0 if self.state_proj is None else 1

    def num_image_tokens(self, num_cameras: int) -> int:
        return num_cameras * self.config.vision.num_patches

    def lm_logits(self, hidden: Tensor) -> Tensor:
        """Tied LM head: normalized VLM hidden states @ token embedding^T, returned as float32 logits.

        The product runs in the weights' dtype: upcasting pi05's 257k × 2048 embedding per decoded token would
        cost more than the rest of the decode step.
        """
        weight = self.vlm.embed_tokens.weight
        return F.linear(hidden.to(weight.dtype), weight).float()

    def fuse_projections(self) -> None:
        """Fuse Q/K/V and gate/up of both experts for inference (gemma.py `fuse_rows`; state dict unchanged)."""
        self.vlm.fuse_projections()
        self.expert.fuse_projections()

    @property
    def projections_fused(self) -> bool:
        return self.vlm.fused or self.expert.fused

    def _check_batch(self, batch: Pi05Batch) -> None:
        if batch.images.dim() != 5:
            raise ValueError(f"images must be [B, n_cam, 3, S, S], got {tuple(batch.images.shape)}")
        if batch.image_masks.shape != batch.images.shape[:2]:
            raise ValueError("image_masks must be [B, n_cam]")
        if batch.tokens.shape != batch.token_mask.shape:
            raise ValueError("tokens and token_mask must have the same shape [B, L]")

    # ---- embeddings ------------------------------------------------------------------------------
    def embed_prefix(self, batch: Pi05Batch) -> tuple[Tensor, Tensor, Tensor]:
        """Image tokens of every camera, then scaled text embeddings. Returns (embs, pad_mask, ar_mask)."""
        self._check_batch(batch)
        b, n_cam = batch.images.shape[:2]
        features = self.vision(batch.images.flatten(0, 1).to(self.dtype))  # [B*n_cam, N, Wv]
        image_tokens = self.projector(features).reshape(b, n_cam * features.shape[1], -1)
        image_pad = batch.image_masks.bool()[:, :, None].expand(b, n_cam, features.shape[1]).reshape(b, -1)
        text = self.vlm.embed(batch.tokens)
        embs = torch.cat([image_tokens, text.to(image_tokens.dtype)], dim=1)
        pad = torch.cat([image_pad, batch.token_mask.bool()], dim=1)
        text_ar = batch.token_ar_mask.bool() if batch.token_ar_mask is not None else torch.zeros_like(batch.token_mask)
        ar = torch.cat([torch.zeros_like(image_pad), text_ar.bool()], dim=1)
        return embs, pad, ar

    def time_condition(self, t: Tensor) -> Tensor:
        """Flow time [B] -> AdaRMS condition [B, W_expert]: swish(out(swish(in(posemb(t)))))."""
        emb = posemb_sincos(t, self.config.expert.width, self.config.time_min_period, self.config.time_max_period)
        emb = F.silu(self.time_mlp_in(emb.to(self.dtype)))
        return F.silu(self.time_mlp_out(emb))

    def time_conditions(self, num_steps: int) -> Tensor:
        """AdaRMS conditions [num_steps, W_expert] of the fixed Euler schedule t = 1, 1 - 1/n, …, 1/n.

        They depend on the weights only, so a sampler can compute them once (the fast path does, at load).
        """
        dt = -1.0 / num_steps
        times = torch.tensor([1.0 + step * dt for step in range(num_steps)], dtype=torch.float32, device=self.device)
        return self.time_condition(times)

    def embed_suffix(self, x_t: Tensor, t: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Suffix tokens [B, S + H, W_expert] (S = `num_state_tokens`) and their AdaRMS condition [B, W_expert]."""
        return self.suffix_tokens(x_t, state), self.time_condition(t)

    def suffix_tokens(self, x_t: Tensor, state: Tensor | None = None) -> Tensor:
        """Suffix tokens [B, S + H, W_expert]: the projected noisy actions, after the state token if there is one.

        With `state_token` the suffix opens with state_proj(state), as π₀ does (openpi pi0.py `embed_suffix`).
        That token goes through the expert with the same time condition as the action tokens: one condition
        per sequence keeps `joint_forward` as it is, and because only the action tokens' outputs are read, the
        state token merely offers keys/values to them, which may as well depend on t.
        """
        actions = self.action_in_proj(x_t.to(self.dtype))
        if self.state_proj is None:
            return actions
        state_token = self.state_proj(self._checked_state(state, actions.shape[0]).to(self.dtype))
        return torch.cat([state_token[:, None, :], actions], dim=1)

    def _checked_state(self, state: Tensor | None, batch_size: int) -> Tensor:
        expected = (batch_size, self.config.max_state_dim)
        if state is None:
            raise ValueError(
                f"this model has a continuous state token (config.state_token); the batch needs `state` {list(expected)}, "
                "the normalized robot state zero-padded to max_state_dim"
            )
        if tuple(state.shape) != expected:
            raise ValueError(f"state must have shape {list(expected)}, got {list(state.shape)}")
        return state

    def _suffix_masks(self, batch_size: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """(pad, ar) of the suffix: blocks state | actions (π₀), or one action block without a state token.

        Under `make_attn_mask` the state token sees only itself (and the prefix, granted by the callers), while
        every action token sees the state token and all action tokens.
        """
        n_state, length = self.num_state_tokens, self.num_state_tokens + self.config.action_horizon
        pad = torch.ones(batch_size, length, dtype=torch.bool, device=device)
        ar = torch.zeros(length, dtype=torch.bool, device=device)
        ar[0] = True  # the suffix never joins the prefix's block
        ar[n_state] = True  # the action block starts after the state token (index 0 again without one)
        return pad, ar[None].expand(batch_size, length)

    def _action_velocity(self, suffix_out: Tensor) -> Tensor:
        """Expert outputs of the whole suffix -> velocities [B, H, A]; the state token's output is discarded."""
        return self.action_out_proj(suffix_out[:, self.num_state_tokens :]).float()

    def _suffix_visible_prefix(self, batch: Pi05Batch, prefix_pad: Tensor) -> Tensor:
        """Prefix tokens the action tokens may see: valid ones, minus CE targets (e.g. FAST action tokens)."""
        visible = prefix_pad.clone()
        if batch.token_loss_mask is not None:
            offset = prefix_pad.shape[1] - batch.tokens.shape[1]
            visible[:, offset:] &= ~batch.token_loss_mask.bool()
        return visible

    # ---- full (uncached) joint forward ----------------------------------------------------------
    def forward_joint(self, batch: Pi05Batch, x_t: Tensor | None, t: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """One pass over prefix (+ suffix when x_t is given), both experts in the same attention.

        Returns (prefix hidden after the VLM final norm, suffix hidden after the expert final norm or None).
        """
        prefix, prefix_pad, prefix_ar = self.embed_prefix(batch)
        prefix_mask = make_attn_mask(prefix_pad, prefix_ar)
        prefix_pos = torch.cumsum(prefix_pad.long(), dim=1) - 1
        if x_t is None:
            outs, _ = joint_forward(
                [self.vlm, self.expert],
                [prefix, None],
                [None, None],
                prefix_mask,
                prefix_pos,
                rope_max_wavelength=self.config.rope_max_wavelength,
            )
            return outs[0], None
        suffix, cond = self.embed_suffix(x_t, t, batch.state)
        b, lp, ls = prefix.shape[0], prefix.shape[1], suffix.shape[1]
        suffix_pad, suffix_ar = self._suffix_masks(b, prefix.device)
        visible = self._suffix_visible_prefix(batch, prefix_pad)
        mask = torch.zeros(b, lp + ls, lp + ls, dtype=torch.bool, device=prefix.device)
        mask[:, :lp, :lp] = prefix_mask
        mask[:, lp:, :lp] = visible[:, None, :]
        mask[:, lp:, lp:] = make_attn_mask(suffix_pad, suffix_ar)
        suffix_pos = visible.sum(-1, keepdim=True) + torch.cumsum(suffix_pad.long(), dim=1) - 1
        positions = torch.cat([prefix_pos, suffix_pos], dim=1)
        outs, _ = joint_forward(
            [self.vlm, self.expert],
            [prefix, suffix],
            [None, cond],
            mask,
            positions,
            rope_max_wavelength=self.config.rope_max_wavelength,
            insulate=self.config.knowledge_insulation,
        )
        return outs[0], outs[1]

    def velocity(self, batch: Pi05Batch, x_t: Tensor, t: Tensor) -> Tensor:
        """Uncached velocity v(x_t, t) from one joint pass (training path; reference for the cached path)."""
        _, suffix_out = self.forward_joint(batch, x_t, t)
        return self._action_velocity(suffix_out)

    # ---- training --------------------------------------------------------------------------------
    def sample_time(self, batch_size: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        """t ~ Beta(1.5, 1)·0.999 + 0.001 (biased toward noisy times)."""
        u = torch.rand(batch_size, device=device, generator=generator, dtype=torch.float32)
        return u ** (1.0 / 1.5) * 0.999 + 0.001  # inverse CDF of Beta(1.5, 1) is u^(1/1.5)

    def compute_loss(
        self, batch: Pi05Batch, noise: Tensor | None = None, time: Tensor | None = None
    ) -> dict[str, Tensor]:
        """{"loss", "flow_loss", "ce_loss"}: flow matching on actions + CE on text targets (tied LM head)."""
        device = batch.tokens.device
        has_flow = batch.actions is not None
        if has_flow and batch.has_actions is not None and not bool(batch.has_actions.any()):
            has_flow = False
        x_t = t = u = None
        if has_flow:
            actions = batch.actions.float()
            if actions.shape[1:] != (self.config.action_horizon, self.config.max_action_dim):
                raise ValueError(
                    f"actions must be [B, {self.config.action_horizon}, {self.config.max_action_dim}], "
                    f"got {tuple(actions.shape)}"
                )
            noise = torch.randn_like(actions) if noise is None else noise.float()
            t = self.sample_time(actions.shape[0], device) if time is None else time.float()
            t_b = t[:, None, None]
            x_t = t_b * noise + (1.0 - t_b) * actions
            u = noise - actions
        prefix_out, suffix_out = self.forward_joint(batch, x_t, t)

        zero = prefix_out.sum() * 0.0
        flow_loss = zero
        if has_flow:
            v = self._action_velocity(suffix_out)
            weight = torch.ones_like(v)
            if batch.action_mask is not None:
                weight = weight * batch.action_mask.float()[:, None, :]
            if batch.action_is_pad is not None:
                weight = weight * (~batch.action_is_pad.bool()).float()[:, :, None]
            if batch.has_actions is not None:
                weight = weight * batch.has_actions.float()[:, None, None]
            flow_loss = ((v - u) ** 2 * weight).sum() / weight.sum().clamp(min=1.0)

        ce_loss = zero
        if batch.token_loss_mask is not None and bool(batch.token_loss_mask[:, 1:].any()):
            targets_mask = batch.token_loss_mask[:, 1:].bool() & batch.token_mask[:, 1:].bool()
            offset = prefix_out.shape[1] - batch.tokens.shape[1]
            hidden = prefix_out[:, offset : offset + batch.tokens.shape[1] - 1]  # position i predicts token i+1
            logits = self.lm_logits(hidden[targets_mask])
            ce_loss = F.cross_entropy(logits, batch.tokens[:, 1:][targets_mask])
        loss = flow_loss + self.config.ce_loss_weight * ce_loss
        return {"loss": loss, "flow_loss": flow_loss, "ce_loss": ce_loss}

    # ---- inference: actions ---------------------------------------------------------------------
    def _run_prefix(
        self, batch: Pi05Batch, final_norm: bool, cache: StaticKVCache | None = None
    ) -> tuple[list[Tensor | None], KVCache, Tensor]:
        """The VLM alone over images + prompt (bidirectional prefix): outputs, per-layer keys/values, valid mask.

        Shared by action sampling (which only needs the cache) and subtask decoding (which also reads the
        last valid position's output through the LM head, hence `final_norm`). With `cache`, the keys/values are
        written into its first slots and the returned KVCache views them. Without CE targets (inference) every
        valid token sees every valid token, so one key-padding row serves all queries: the outputs of valid
        tokens are those of the full block mask, only padding rows (never read, never attended to) differ.
        """
        prefix, prefix_pad, prefix_ar = self.embed_prefix(batch)
        mask = prefix_pad[:, None, :] if batch.token_ar_mask is None else make_attn_mask(prefix_pad, prefix_ar)
        positions = torch.cumsum(prefix_pad.long(), dim=1) - 1
        length = prefix.shape[1]
        if cache is not None and cache.length > length:  # decoding slots after the prefix stay unseen for now
            mask = F.pad(mask, (0, cache.length - length), value=False)
        outs, kv = joint_forward(
            [self.vlm, self.expert],
            [prefix, None],
            [None, None],
            mask,
            positions,
            rope_max_wavelength=self.config.rope_max_wavelength,
            return_kv=cache is None,
            final_norm=final_norm,
            cache=cache,
            cache_slots=None if cache is None else torch.arange(length, device=prefix.device),
        )
        return outs, (kv if cache is None else cache.as_past(length)), prefix_pad  # type: ignore[return-value]

    @torch.no_grad()
    def prefix_cache(self, batch: Pi05Batch, cache: StaticKVCache | None = None) -> tuple[KVCache, Tensor]:
        """Run the VLM once over images + prompt; returns per-layer keys/values and the prefix valid mask.

        With `cache` ([.., L >= prefix length, ..]) the keys/values are written into it and returned as views.
        """
        _, kv, prefix_pad = self._run_prefix(batch, final_norm=False, cache=cache)
        return kv, prefix_pad

    def suffix_attention(self, prefix_pad: Tensor) -> tuple[Tensor, Tensor]:
        """Suffix mask [B, S + H, Lp + S + H] over cached prefix + suffix, and suffix positions [B, S + H].

        The same at every denoising step, so a sampler builds them once per chunk.
        """
        b, lp = prefix_pad.shape
        suffix_pad, suffix_ar = self._suffix_masks(b, prefix_pad.device)
        length = suffix_pad.shape[1]
        mask = torch.cat([prefix_pad[:, None, :].expand(b, length, lp), make_attn_mask(suffix_pad, suffix_ar)], dim=2)
        positions = prefix_pad.sum(-1, keepdim=True) + torch.cumsum(suffix_pad.long(), dim=1) - 1
        return mask, positions

    def expert_velocity(
        self, kv: KVCache, mask: Tensor, positions: Tensor, x_t: Tensor, cond: Tensor, state: Tensor | None = None
    ) -> Tensor:
        """Velocity [B, H, A] from the expert alone at AdaRMS condition `cond` [B, W], over the cached prefix.

        `mask`/`positions` come from `suffix_attention`; the prefix keys/values are read, never written.
        """
        outs, _ = joint_forward(
            [self.vlm, self.expert],
            [None, self.suffix_tokens(x_t, state)],
            [None, cond],
            mask,
            positions,
            rope_max_wavelength=self.config.rope_max_wavelength,
            past_kv=kv,
        )
        return self._action_velocity(outs[1])

    def denoise_step(
        self, kv: KVCache, prefix_pad: Tensor, x_t: Tensor, t: Tensor, state: Tensor | None = None
    ) -> Tensor:
        """Velocity from the expert alone at flow times t [B], attending to the cached prefix (read-only).

        `state` ([B, max_state_dim]) is required with `state_token`; its token is recomputed every step (it is
        one token, and its keys/values depend on t through AdaRMS), as openpi's π₀ does.
        """
        mask, positions = self.suffix_attention(prefix_pad)
        return self.expert_velocity(kv, mask, positions, x_t, self.time_condition(t), state)

    @torch.no_grad()
    def sample_actions(
        self,
        batch: Pi05Batch,
        noise: Tensor | None = None,
        num_steps: int = 10,
        prev_actions: Tensor | None = None,
        delay: int | Tensor = 0,
        *,
        prev_lengths: Tensor | None = None,
        max_guidance_weight: float = 5.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Euler-integrate the flow from t=1 (noise) to t=0; returns normalized [B, H, max_action_dim].

        With `prev_actions` ([B, k, A], the previous chunk's unexecuted actions, normalized and padded) the
        integration is guided toward them (real-time chunking): the first `delay` actions are held to the
        previous chunk and the rest of the overlap is softly inpainted, guidance weight capped.
        """
        if num_steps < 1:
            raise ValueError("num_steps must be >= 1")
        b = batch.batch_size
        shape = (b, self.config.action_horizon, self.config.max_action_dim)
        device = batch.tokens.device
        if noise is None:
            noise = torch.randn(shape, device=device, generator=generator, dtype=torch.float32)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise must have shape {shape}, got {tuple(noise.shape)}")
        kv, prefix_pad = self.prefix_cache(batch)
        guide = None
        if prev_actions is not None:
            guide = self._rtc_targets(prev_actions, delay, prev_lengths, shape, device)
        return self.denoise(kv, prefix_pad, noise, batch.state, num_steps, guide, max_guidance_weight)

    def denoise(
        self,
        kv: KVCache,
        prefix_pad: Tensor,
        noise: Tensor,
        state: Tensor | None,
        num_steps: int,
        guide: tuple[Tensor, Tensor] | None = None,
        max_guidance_weight: float = 5.0,
        conds: Tensor | None = None,
    ) -> Tensor:
        """The Euler loop from t = 1 to 0 over a cached prefix; [B, H, max_action_dim] float32.

        `guide` = (target, weights) from `rtc_guide` turns on real-time-chunking guidance; `conds` are the
        schedule's `time_conditions(num_steps)` when the caller has them already. No host synchronisation and
        no data-dependent shapes, so the fast path captures the whole loop as one CUDA graph.
        """
        conds = self.time_conditions(num_steps) if conds is None else conds
        mask, positions = self.suffix_attention(prefix_pad)
        b = noise.shape[0]
        x = noise.float()
        dt = -1.0 / num_steps
        for step in range(num_steps):
            velocity = functools.partial(
                self.expert_velocity, kv, mask, positions, cond=conds[step].expand(b, -1), state=state
            )
            if guide is None:
                v = velocity(x)
            else:
                v = self._guided_velocity(velocity, x, 1.0 + step * dt, guide, max_guidance_weight)
            x = x + dt * v
        return x

    def _rtc_targets(
        self, prev_actions: Tensor, delay: int | Tensor, prev_lengths: Tensor | None, shape: tuple, device
    ) -> tuple[Tensor, Tensor]:
        """Checked inputs -> `rtc_guide` (the checks read values on the host; the fast path checks beforehand)."""
        b, horizon, dim = shape
        prev = prev_actions.float().to(device)
        if prev.dim() != 3 or prev.shape[0] != b or prev.shape[1] > horizon or prev.shape[2] != dim:
            raise ValueError(f"prev_actions must be [B, k<= {horizon}, {dim}], got {tuple(prev.shape)}")
        if prev_lengths is None:
            prev_lengths = torch.full((b,), prev.shape[1], device=device)
        delay_t = (
            torch.as_tensor(delay, device=device).expand(b)
            if not torch.is_tensor(delay) or delay.dim() == 0
            else delay.to(device)
        )
        if bool((delay_t < 0).any()) or bool((delay_t > prev_lengths.to(device)).any()):
            raise ValueError("delay must be between 0 and the number of previous actions")
        return rtc_guide(prev, prev_lengths.to(device), delay_t, horizon)

    def _guided_velocity(
        self,
        velocity: Callable[[Tensor], Tensor],
        x: Tensor,
        t_value: float,
        guide: tuple[Tensor, Tensor],
        max_guidance_weight: float,
    ) -> Tensor:
        """ΠGDM-style guidance (RTC): pull the predicted clean chunk toward the previous chunk's overlap."""
        target, weights = guide
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            v = velocity(x_in)
            predicted = x_in - t_value * v  # estimate of the clean chunk (t=0)
            error = (target - predicted) * weights[:, :, None]
            (grad,) = torch.autograd.grad(predicted, x_in, grad_outputs=error)
        tau = 1.0 - t_value  # RTC's time: 0 = noise, 1 = data
        if tau <= 0.0:
            guidance = max_guidance_weight
        else:
            r2 = (1.0 - tau) ** 2 / (tau**2 + (1.0 - tau) ** 2)
            guidance = min(max_guidance_weight, (1.0 - tau) / (tau * r2)) if r2 > 0 else max_guidance_weight
        # x moves by dt·v with dt < 0, so subtracting the guidance gradient from v moves x toward the target.
        return v.detach() - guidance * grad

    # ---- inference: text (System 2) -------------------------------------------------------------
    def decode_prefix(self, batch: Pi05Batch, cache: StaticKVCache) -> tuple[Tensor, Tensor]:
        """Prefix pass of System-2 decoding into a static cache: (first greedy token [B], prefix valid mask [B, Lp]).

        The first token is read at each sample's last valid prefix position.
        """
        outs, _, pad = self._run_prefix(batch, final_norm=True, cache=cache)
        last_index = pad.shape[1] - 1 - torch.argmax(pad.flip(1).long(), dim=1)
        hidden = outs[0][torch.arange(pad.shape[0], device=pad.device), last_index]  # type: ignore[index]
        return self.lm_logits(hidden).argmax(-1), pad

    def decode_step(
        self, cache: StaticKVCache, visible: Tensor, token: Tensor, position: Tensor, slot: Tensor
    ) -> Tensor:
        """One greedy token with a static cache (gpt-fast's decode step): the next token [B].

        `token` [B] is the last generated token, `position` [B] its RoPE position, `slot` [1] the cache slot its
        keys/values go to, `visible` [B, cache.length] the slots it may see (valid prefix, earlier tokens, itself).
        """
        outs, _ = joint_forward(
            [self.vlm, self.expert],
            [self.vlm.embed(token[:, None]), None],
            [None, None],
            visible[:, None, :],
            position[:, None],
            rope_max_wavelength=self.config.rope_max_wavelength,
            cache=cache,
            cache_slots=slot,
        )
        return self.lm_logits(outs[0][:, -1]).argmax(-1)  # type: ignore[index]

    @torch.no_grad()
    def generate_subtask(
        self, batch: Pi05Batch, max_new_tokens: int = 24, eos_id: int | None = None
    ) -> list[list[int]]:
        """Greedy decoding through the tied LM head with a KV cache; stops at EOS or `max_new_tokens`.

        The prompt is right-padded; each generated token takes the next position after that sample's valid
        tokens and attends to the whole valid prefix and the tokens generated before it. EOS is not returned.
        """
        eos = self.config.eos_token_id if eos_id is None else eos_id
        b = batch.batch_size
        outs, kv, pad = self._run_prefix(batch, final_norm=True)
        lengths = pad.long().sum(-1)
        if bool((lengths == 0).any()):
            raise ValueError("every sample needs at least one valid prefix token")
        last_index = pad.shape[1] - 1 - torch.argmax(pad.flip(1).long(), dim=1)  # last valid prefix position
        hidden = outs[0][torch.arange(b, device=pad.device), last_index]
        next_token = self.lm_logits(hidden).argmax(-1)
        generated: list[list[int]] = [[] for _ in range(b)]
        done = torch.zeros(b, dtype=torch.bool, device=pad.device)
        cache_mask = pad
        next_pos = lengths
        for step in range(max_new_tokens):
            for i in range(b):
                if not done[i] and int(next_token[i]) != eos:
                    generated[i].append(int(next_token[i]))
            done |= next_token == eos
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            emb = self.vlm.embed(next_token[:, None])
            cache_mask = torch.cat([cache_mask, torch.ones(b, 1, dtype=torch.bool, device=pad.device)], dim=1)
            outs, new_kv = joint_forward(
                [self.vlm, self.expert],
                [emb, None],
                [None, None],
                cache_mask[:, None, :],
                next_pos[:, None],
                rope_max_wavelength=self.config.rope_max_wavelength,
                past_kv=kv,
                return_kv=True,
            )
            kv = [
                (torch.cat([pk, nk], dim=1), torch.cat([pv, nv], dim=1))
                for (pk, pv), (nk, nv) in zip(kv, new_kv, strict=True)
            ]
            next_token = self.lm_logits(outs[0][:, -1]).argmax(-1)
            next_pos = next_pos + 1
        return generated
