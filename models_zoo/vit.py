"""A tiny Vision Transformer with hand-written attention (no ``nn.MultiheadAttention``).

Why: attention is where channel pruning meets reshapes. The qkv Linear's 3*dim outputs are viewed
as (3, heads, head_dim) and permuted, so its output features are only prunable in whole heads or in
matching head_dim slices across q, k and v; the cls-token concat and the position-embedding add
tie loose ``nn.Parameter``s to the embedding dimension; every residual add couples all blocks'
``dim`` channels. Writing attention out explicitly exposes those ops to torch.fx as plain nodes.
"""

from __future__ import annotations

import torch
from torch import nn

from graphprune.errors import InputError
from models_zoo._common import ImageInputs, example_image, init_weights, seeded

DIM = 64
HEADS = 4
DEPTH = 2
PATCH = 4
MLP_RATIO = 4


class Attention(nn.Module):
    """Multi-head self-attention: qkv -> (3, B, heads, N, head_dim) -> softmax(q k^T * scale) v -> proj."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(batch, tokens, channels)
        return self.proj(out)


class Mlp(nn.Sequential):
    """Linear (ratio x expansion) -> GELU -> Linear."""

    def __init__(self, dim: int, ratio: int) -> None:
        super().__init__(nn.Linear(dim, ratio * dim), nn.GELU(), nn.Linear(ratio * dim, dim))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, MLP_RATIO)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Conv patch embedding, cls token, learned position embedding, ``depth`` blocks, head on cls."""

    def __init__(self, image_size: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        if image_size % PATCH:
            raise InputError(f"vit_tiny needs an image size divisible by {PATCH}, got {image_size}")
        num_patches = (image_size // PATCH) ** 2
        self.patch_embed = nn.Conv2d(3, DIM, PATCH, stride=PATCH)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, DIM))
        self.blocks = nn.Sequential(*(Block(DIM, HEADS) for _ in range(DEPTH)))
        self.norm = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, DIM)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def vit_tiny(input_size: int = 32, num_classes: int = 10) -> tuple[nn.Module, ImageInputs]:
    """ViT with dim 64, 4 heads, depth 2, patch 4, for 32x32 inputs (65 tokens)."""
    with seeded():
        model = TinyViT(input_size, num_classes)
        init_weights(model)
        nn.init.trunc_normal_(model.cls_token, std=0.5)
        nn.init.trunc_normal_(model.pos_embed, std=0.5)
    return model.eval(), example_image(input_size)
