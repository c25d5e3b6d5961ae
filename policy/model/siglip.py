"""SigLIP vision tower: images in [-1, 1] -> one token per patch (no pooling head, as PaliGemma uses it).

Pre-LayerNorm ViT: patch convolution + learned position embedding, `depth` blocks of
x + MHA(LN(x)) and x + MLP(LN(x)) with tanh-approximated GELU, then a final LayerNorm. Submodule names
follow the Hugging Face layout so checkpoint keys map by a prefix swap (policy/checkpoints.py).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from policy.model.config import SiglipConfig


class SiglipEmbeddings(nn.Module):
    def __init__(self, config: SiglipConfig):
        super().__init__()
        self.patch_embedding = nn.Conv2d(3, config.width, kernel_size=config.patch_size, stride=config.patch_size)
        self.position_embedding = nn.Embedding(config.num_patches, config.width)

    def forward(self, images: Tensor) -> Tensor:
        patches = self.patch_embedding(images.to(self.patch_embedding.weight.dtype))  # [B, W, h, w]
        tokens = patches.flatten(2).transpose(1, 2)  # [B, N, W], row-major patch order
        return tokens + self.position_embedding.weight[None].to(tokens.dtype)


class SiglipAttention(nn.Module):
    """Full multi-head self-attention with biases (every patch sees every patch)."""

    def __init__(self, config: SiglipConfig):
        super().__init__()
        if config.width % config.num_heads:
            raise ValueError("SigLIP width must be divisible by num_heads")
        self.num_heads = config.num_heads
        self.head_dim = config.width // config.num_heads
        self.q_proj = nn.Linear(config.width, config.width)
        self.k_proj = nn.Linear(config.width, config.width)
        self.v_proj = nn.Linear(config.width, config.width)
        self.out_proj = nn.Linear(config.width, config.width)

    def forward(self, x: Tensor) -> Tensor:
        batch, length, width = x.shape

        def heads(t: Tensor) -> Tensor:
            return t.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        # no mask, so on a GPU this is a flash-attention kernel (softmax accumulated in float32 inside)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.head_dim**-0.5)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, width))


class SiglipMLP(nn.Module):
    def __init__(self, config: SiglipConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.width, config.mlp_dim)
        self.fc2 = nn.Linear(config.mlp_dim, config.width)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class SiglipEncoderLayer(nn.Module):
    def __init__(self, config: SiglipConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(config.width, eps=config.layer_norm_eps)
        self.self_attn = SiglipAttention(config)
        self.layer_norm2 = nn.LayerNorm(config.width, eps=config.layer_norm_eps)
        self.mlp = SiglipMLP(config)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class SiglipEncoder(nn.Module):
    def __init__(self, config: SiglipConfig):
        super().__init__()
        self.layers = nn.ModuleList(SiglipEncoderLayer(config) for _ in range(config.depth))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class SiglipVisionTower(nn.Module):
    """[B, 3, S, S] float images in [-1, 1] -> [B, (S/patch)^2, width] patch features."""

    def __init__(self, config: SiglipConfig):
        super().__init__()
        self.config = config
        self.embeddings = SiglipEmbeddings(config)
        self.encoder = SiglipEncoder(config)
        self.post_layernorm = nn.LayerNorm(config.width, eps=config.layer_norm_eps)

    def forward(self, images: Tensor) -> Tensor:
        size = self.config.image_size
        if images.shape[-3:] != (3, size, size):
            raise ValueError(f"vision tower expects images [..., 3, {size}, {size}], got {tuple(images.shape)}")
        return self.post_layernorm(self.encoder(self.embeddings(images)))
