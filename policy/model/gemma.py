"""Gemma decoder blocks and the joint two-expert layer that makes π₀.₅ one transformer with two weight sets.

Each expert (the PaliGemma VLM and the action expert) has its own norms, Q/K/V/O projections and GeGLU
MLP; per layer the Q/K/V of all experts' tokens are concatenated along the sequence, rotated with shared
positions and attended in one softmax, then split back so each expert applies its own output projection
(Physical-Intelligence/openpi src/openpi/models/gemma.py, `Attention` and `Block`). The action expert's norms are adaptive (AdaRMSNorm: scale, shift and a
residual gate computed from the flow-time embedding). Submodule names follow the Hugging Face layout
(`self_attn.q_proj`, `mlp.gate_proj`, `input_layernorm`, ...) so checkpoint keys map by prefix.

For fast inference (policy/fast_path.py) the same modules can fuse Q/K/V and gate/up into single matrices
(`fuse_projections`) and write keys/values into a preallocated `StaticKVCache` instead of returning new tensors
(gpt-fast `model.py` `KVCache`, pytorch-labs/gpt-fast); both leave the state dict and the results unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from policy.model.config import GemmaConfig

# openpi masks attention logits with this value rather than -inf so fully masked rows stay finite.
MASK_VALUE = -2.3819763e38

KVCache = list[tuple[Tensor, Tensor]]  # per layer: (keys [B, L, KV, Dh] after RoPE, values [B, L, KV, Dh])


@dataclasses.dataclass
class StaticKVCache:
    """Keys/values of every layer in one preallocated buffer, written in place (gpt-fast's `KVCache`).

    keys/values: [depth, B, length, KV, Dh]. A forward pass writes its own keys at chosen slots and attends to
    all `length` slots under a mask, so shapes never change from call to call: what a CUDA graph needs, and
    what lets System-2 decoding add one token without `torch.cat` growing the cache.
    """

    keys: Tensor
    values: Tensor

    @classmethod
    def allocate(
        cls, config: GemmaConfig, batch_size: int, length: int, dtype: torch.dtype, device: torch.device | str
    ) -> StaticKVCache:
        shape = (config.depth, batch_size, length, config.num_kv_heads, config.head_dim)
        # zeros, not empty: slots not yet written are masked, but masked values must still be finite
        return cls(torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device))

    @property
    def length(self) -> int:
        return int(self.keys.shape[2])

    def write(self, layer: int, slots: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k/v [B, len(slots), KV, Dh] at `slots` (a [len] long tensor) of `layer`; returns that layer's buffers."""
        keys, values = self.keys[layer], self.values[layer]
        keys.index_copy_(1, slots, k.to(keys.dtype))
        values.index_copy_(1, slots, v.to(values.dtype))
        return keys, values

    def as_past(self, length: int | None = None) -> KVCache:
        """The first `length` slots of every layer as a read-only `past_kv` (views, no copy)."""
        end = self.length if length is None else length
        return [(self.keys[i, :, :end], self.values[i, :, :end]) for i in range(self.keys.shape[0])]


class RMSNorm(nn.Module):
    """Gemma RMSNorm: x / rms(x) * (1 + w), computed in float32, w initialised to zero."""

    def __init__(self, width: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(width))

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if cond is not None:
            raise ValueError("plain RMSNorm takes no conditioning")
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * (1.0 + self.weight.float())).to(x.dtype), None


class AdaRMSNorm(nn.Module):
    """Adaptive RMSNorm of the action expert: y = norm(x)·(1+scale)+shift, plus a gate for the residual.

    `dense` is zero-initialised, so an untrained expert starts as plain normalization with a closed gate.
    """

    def __init__(self, width: int, cond_width: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.dense = nn.Linear(cond_width, 3 * width)
        nn.init.zeros_(self.dense.weight)
        nn.init.zeros_(self.dense.bias)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if cond is None:
            raise ValueError("AdaRMSNorm needs the time conditioning vector")
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        modulation = self.dense(cond.to(self.dense.weight.dtype)).float()
        if modulation.dim() == 2:  # one condition per sequence -> broadcast over tokens
            modulation = modulation[:, None, :]
        scale, shift, gate = modulation.chunk(3, dim=-1)
        return (normed * (1.0 + scale) + shift).to(x.dtype), gate.to(x.dtype)


class GemmaAttentionProjections(nn.Module):
    """Q/K/V/O projections of one expert (multi-query: few KV heads shared by all query heads)."""

    def __init__(self, config: GemmaConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.num_kv_heads = config.num_kv_heads
        self.head_dim = config.head_dim
        self.q_proj = nn.Linear(config.width, config.num_heads * config.head_dim, bias=False)
        self.k_proj = nn.Linear(config.width, config.num_kv_heads * config.head_dim, bias=False)
        self.v_proj = nn.Linear(config.width, config.num_kv_heads * config.head_dim, bias=False)
        self.o_proj = nn.Linear(config.num_heads * config.head_dim, config.width, bias=False)
        self.register_buffer("qkv_weight", None, persistent=False)  # set by `fuse`

    def fuse(self) -> None:
        """One [q; k; v] weight matrix so the three projections are one GEMM (see `fuse_rows`)."""
        self.qkv_weight = fuse_rows([self.q_proj, self.k_proj, self.v_proj])

    def qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        q_width, kv_width = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        if self.qkv_weight is not None and not self.training:
            q, k, v = F.linear(x, self.qkv_weight).split([q_width, kv_width, kv_width], dim=-1)
        else:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        return (
            q.unflatten(-1, (self.num_heads, self.head_dim)),
            k.unflatten(-1, (self.num_kv_heads, self.head_dim)),
            v.unflatten(-1, (self.num_kv_heads, self.head_dim)),
        )


class GemmaMLP(nn.Module):
    """GeGLU feed-forward: down(gelu_tanh(gate(x)) * up(x))."""

    def __init__(self, config: GemmaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.width, config.mlp_dim, bias=False)
        self.up_proj = nn.Linear(config.width, config.mlp_dim, bias=False)
        self.down_proj = nn.Linear(config.mlp_dim, config.width, bias=False)
        self.register_buffer("gate_up_weight", None, persistent=False)  # set by `fuse`

    def fuse(self) -> None:
        """One [gate; up] weight matrix so both input projections are one GEMM (see `fuse_rows`)."""
        self.gate_up_weight = fuse_rows([self.gate_proj, self.up_proj])

    def forward(self, x: Tensor) -> Tensor:
        if self.gate_up_weight is not None and not self.training:
            gate, up = F.linear(x, self.gate_up_weight).chunk(2, dim=-1)
        else:
            gate, up = self.gate_proj(x), self.up_proj(x)
        return self.down_proj(F.gelu(gate, approximate="tanh") * up)


def fuse_rows(linears: Sequence[nn.Linear]) -> Tensor:
    """Stack bias-free linears' weights into one matrix and make each original weight a view of its rows.

    The parameters keep their names and values, so the state dict is unchanged: checkpoints still load strictly,
    and an in-place load (`load_state_dict` copies into the parameters) updates the fused matrix with them.
    Only eval mode reads the fused matrix: gradients must reach the parameters, so training uses them directly.
    Call it after moving the module to its device and dtype: `.to()` replaces parameters and buffers separately.
    """
    if any(linear.bias is not None for linear in linears):
        raise ValueError("only bias-free projections are fused")
    fused = torch.cat([linear.weight.detach() for linear in linears], dim=0)
    start = 0
    for linear in linears:
        rows = linear.weight.shape[0]
        linear.weight.data = fused[start : start + rows]
        start += rows
    return fused


class GemmaLayer(nn.Module):
    def __init__(self, config: GemmaConfig, adaptive: bool, cond_width: int, eps: float):
        super().__init__()
        if adaptive:
            self.input_layernorm: nn.Module = AdaRMSNorm(config.width, cond_width, eps)
            self.post_attention_layernorm: nn.Module = AdaRMSNorm(config.width, cond_width, eps)
        else:
            self.input_layernorm = RMSNorm(config.width, eps)
            self.post_attention_layernorm = RMSNorm(config.width, eps)
        self.self_attn = GemmaAttentionProjections(config)
        self.mlp = GemmaMLP(config)


class GemmaStack(nn.Module):
    """The weights of one expert: optional token embedding, `depth` layers, final norm.

    Forward passes go through `joint_forward`, which can run one expert alone or several together.
    """

    def __init__(self, config: GemmaConfig, vocab_size: int | None = None, adaptive: bool = False, eps: float = 1e-6):
        super().__init__()
        self.config = config
        self.adaptive = adaptive
        self.embed_tokens = nn.Embedding(vocab_size, config.width) if vocab_size else None
        self.layers = nn.ModuleList(GemmaLayer(config, adaptive, config.width, eps) for _ in range(config.depth))
        self.norm: nn.Module = AdaRMSNorm(config.width, config.width, eps) if adaptive else RMSNorm(config.width, eps)

    def fuse_projections(self) -> None:
        """Fused Q/K/V and gate/up matrices in every layer (inference; see `fuse_rows`). Idempotent."""
        for layer in self.layers:
            if layer.self_attn.qkv_weight is None:
                layer.self_attn.fuse()
            if layer.mlp.gate_up_weight is None:
                layer.mlp.fuse()

    @property
    def fused(self) -> bool:
        return all(layer.self_attn.qkv_weight is not None for layer in self.layers)

    def embed(self, tokens: Tensor) -> Tensor:
        """Token embeddings scaled by sqrt(width), as Gemma (and π₀.₅'s prefix) uses them."""
        if self.embed_tokens is None:
            raise RuntimeError("this expert has no token embedding")
        weight = self.embed_tokens.weight
        return F.embedding(tokens, weight) * torch.tensor(self.config.width**0.5, dtype=weight.dtype)


def rope_tables(positions: Tensor, head_dim: int, max_wavelength: float) -> tuple[Tensor, Tensor]:
    """sin/cos tables [B, L, 1, Dh/2] for `rope`; computed once per forward and shared by all layers."""
    half = head_dim // 2
    freq_exponents = torch.arange(half, dtype=torch.float32, device=positions.device) * (2.0 / head_dim)
    inv_timescale = max_wavelength ** (-freq_exponents)
    angles = positions.to(torch.float32)[..., None] * inv_timescale  # [B, L, half]
    return torch.sin(angles)[:, :, None, :], torch.cos(angles)[:, :, None, :]


def rope(x: Tensor, tables: tuple[Tensor, Tensor]) -> Tensor:
    """Rotary embedding on [B, L, heads, Dh] with the first/second half split (openpi `_apply_rope`)."""
    sin, cos = tables
    half = x.shape[-1] // 2
    x32 = x.float()
    first, second = x32[..., :half], x32[..., half:]
    return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1).to(x.dtype)


def make_attn_mask(pad_mask: Tensor, ar_mask: Tensor) -> Tensor:
    """big_vision/openpi block mask: token i sees valid token j iff block(j) <= block(i).

    `ar_mask` True starts a new block; [L] or [B, L]. Returns bool [B, L, L].
    """
    if ar_mask.dim() == 1:
        ar_mask = ar_mask[None].expand_as(pad_mask)
    blocks = torch.cumsum(ar_mask.long(), dim=1)
    attn = blocks[:, None, :] <= blocks[:, :, None]
    valid = pad_mask[:, None, :] & pad_mask[:, :, None]
    return attn & valid


def mask_bias(mask: Tensor) -> Tensor:
    """bool [B, Lq, Lk] -> additive float32 bias [B, 1, Lq, Lk] (0 or MASK_VALUE) for `attend`.

    Lq may be 1 (a key-padding mask shared by every query). Built without host-to-device copies, so it can run
    inside a CUDA graph capture.
    """
    bias = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    return bias.masked_fill_(~mask, MASK_VALUE)[:, None]


def attend(q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
    """Grouped-query attention. q [B, Lq, H, Dh], k/v [B, Lk, KV, Dh], bias from `mask_bias`.

    Query heads share the KV heads without copies (`enable_gqa`). Masked logits get MASK_VALUE added,
    never -inf, so fully masked padding rows stay finite (openpi does the same). Returns [B, Lq, H*Dh].
    """
    batch, q_len, heads, head_dim = q.shape
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2),
        k.transpose(1, 2),
        v.transpose(1, 2),
        attn_mask=bias.to(q.dtype),
        scale=head_dim**-0.5,
        enable_gqa=k.shape[2] != heads,
    )
    return out.transpose(1, 2).reshape(batch, q_len, heads * head_dim)


def joint_forward(
    stacks: Sequence[GemmaStack],
    hidden: Sequence[Tensor | None],
    conds: Sequence[Tensor | None],
    mask: Tensor,
    positions: Tensor,
    *,
    rope_max_wavelength: float = 10_000.0,
    past_kv: KVCache | None = None,
    return_kv: bool = False,
    insulate: bool = False,
    final_norm: bool = True,
    cache: StaticKVCache | None = None,
    cache_slots: Tensor | None = None,
) -> tuple[list[Tensor | None], KVCache | None]:
    """Run the experts whose `hidden` is not None as one transformer over their concatenated tokens.

    mask: bool [B, Lq, Lpast + Lq] (Lq = sum of active experts' lengths, in `stacks` order), or [B, 1, ...]
    when every query sees the same keys; positions: [B, Lq]. `past_kv` (read-only) is prepended to every
    layer's keys/values; `return_kv` returns this call's own keys/values per layer. With `cache` instead, this
    call's keys/values are written into the static cache at `cache_slots` ([Lq] long) and the queries attend to
    all `cache.length` slots (mask [B, Lq or 1, cache.length]). With `insulate`, queries of experts after the
    first see the first expert's keys/values detached (knowledge insulation: no gradient into the VLM).
    """
    active = [i for i, x in enumerate(hidden) if x is not None]
    if not active:
        raise ValueError("joint_forward needs at least one expert input")
    xs: dict[int, Tensor] = {i: hidden[i] for i in active}  # type: ignore[misc]
    lengths = [xs[i].shape[1] for i in active]
    total = sum(lengths)
    if positions.shape[1] != total:
        raise ValueError(f"positions cover {positions.shape[1]} tokens but inputs have {total}")
    if cache is not None and (past_kv or insulate or cache_slots is None or cache_slots.shape != (total,)):
        raise ValueError("a static cache needs cache_slots [Lq] and excludes past_kv and insulate")
    past_len = past_kv[0][0].shape[1] if past_kv else 0
    key_len = cache.length if cache is not None else past_len + total
    if mask.shape[1] not in (1, total) or mask.shape[2] != key_len:
        raise ValueError(f"mask shape {tuple(mask.shape)} != [B, {total} or 1, {key_len}]")
    depth = stacks[active[0]].config.depth
    tables = rope_tables(positions, stacks[active[0]].config.head_dim, rope_max_wavelength)
    bias = mask_bias(mask)
    new_kv: KVCache = []
    for layer_index in range(depth):
        qs, ks, vs, gates = [], [], [], {}
        for i in active:
            layer = stacks[i].layers[layer_index]
            normed, gates[i] = layer.input_layernorm(xs[i], conds[i])
            q, k, v = layer.self_attn.qkv(normed)
            qs.append(q)
            ks.append(k)
            vs.append(v)
        q = rope(torch.cat(qs, dim=1) if len(qs) > 1 else qs[0], tables)
        k = rope(torch.cat(ks, dim=1) if len(ks) > 1 else ks[0], tables)
        v = torch.cat(vs, dim=1) if len(vs) > 1 else vs[0]
        if return_kv:
            new_kv.append((k, v))
        if cache is not None:
            k, v = cache.write(layer_index, cache_slots, k, v)  # type: ignore[arg-type]
        elif past_kv:
            past_k, past_v = past_kv[layer_index]
            k = torch.cat([past_k.to(k.dtype), k], dim=1)
            v = torch.cat([past_v.to(v.dtype), v], dim=1)
        if insulate and len(active) > 1:
            outs = []
            first_end = past_len + lengths[0]
            start = 0
            for n, length in enumerate(lengths):
                rows = slice(start, start + length)
                if n == 0:
                    k_used, v_used = k, v
                else:
                    k_used = torch.cat([k[:, :first_end].detach(), k[:, first_end:]], dim=1)
                    v_used = torch.cat([v[:, :first_end].detach(), v[:, first_end:]], dim=1)
                outs.append(attend(q[:, rows], k_used, v_used, bias[:, :, rows] if bias.shape[2] > 1 else bias))
                start += length
            attn_out = torch.cat(outs, dim=1)
        else:
            attn_out = attend(q, k, v, bias)
        start = 0
        for i, length in zip(active, lengths, strict=True):
            layer = stacks[i].layers[layer_index]
            out = layer.self_attn.o_proj(attn_out[:, start : start + length].to(xs[i].dtype))
            start += length
            x = xs[i] + (out * gates[i] if gates[i] is not None else out)
            normed, gate = layer.post_attention_layernorm(x, conds[i])
            out = layer.mlp(normed)
            xs[i] = x + (out * gate if gate is not None else out)
    outputs: list[Tensor | None] = [None] * len(hidden)
    for i in active:
        outputs[i] = stacks[i].norm(xs[i], conds[i])[0] if final_norm else xs[i]
    return outputs, (new_kv if return_kv else None)
