"""umT5 text encoder (encoder only), in plain PyTorch.

Math and key names follow shared/reference/FORMATS.md section 5 (reference:
thu-ml/TurboDiffusion ``rcm/utils/umt5.py::T5Encoder``, as in Wan2.1 ``wan/modules/t5.py``).
Module names equal the keys of ``models_t5_umt5-xxl-enc-bf16.pth``: ``token_embedding.weight``,
``blocks.N.{norm1,attn.{q,k,v,o},norm2,ffn.{gate.0,fc1,fc2},pos_embedding.embedding}.weight``,
``norm.weight``.  umT5 has a separate relative-position bias table in every layer.

No buffers: the relative-position buckets are computed per call on the weights' device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engine.configs import T5Config


def relative_position_bucket(offsets: torch.Tensor, num_buckets: int = 32, max_distance: int = 128) -> torch.Tensor:
    """Bidirectional T5 bucket of each offset ``key_pos - query_pos`` (int64, same shape).

    Half the buckets are for positive offsets; within a half, offsets below ``n/4`` get a
    bucket each and larger ones share log-spaced buckets up to ``max_distance``.
    """
    half = num_buckets // 2
    buckets = (offsets > 0).long() * half
    dist = offsets.abs()
    exact = half // 2
    # Same float32 op order as the reference so the log-bucket edges round identically;
    # clamp to 1 only to keep log() finite where the exact branch is taken anyway.
    large = exact + (
        torch.log(dist.clamp(min=1).float() / exact) / math.log(max_distance / exact) * (half - exact)
    ).long()
    large = large.clamp(max=half - 1)
    return buckets + torch.where(dist < exact, dist, large)


class T5Norm(nn.Module):
    """RMS norm without centring or bias; the normalised value is cast to the weight dtype
    (when that is half precision) before the gain, as T5 does."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * torch.rsqrt(x.float().pow(2).mean(dim=-1, keepdim=True) + self.eps)  # float32
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            x = x.type_as(self.weight)
        return self.weight * x


class RelativeBias(nn.Module):
    """Learned bias per (bucket, head): ``[1, H, Lq, Lk]``."""

    def __init__(self, num_buckets: int, num_heads: int, max_distance: int):
        super().__init__()
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.embedding = nn.Embedding(num_buckets, num_heads)

    def forward(self, lq: int, lk: int) -> torch.Tensor:
        device = self.embedding.weight.device
        offsets = torch.arange(lk, device=device)[None, :] - torch.arange(lq, device=device)[:, None]
        buckets = relative_position_bucket(offsets, self.num_buckets, self.max_distance)
        return self.embedding(buckets).permute(2, 0, 1).unsqueeze(0)  # [1, H, Lq, Lk]


class T5Attention(nn.Module):
    def __init__(self, dim: int, dim_attn: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim_attn // num_heads
        self.q = nn.Linear(dim, dim_attn, bias=False)
        self.k = nn.Linear(dim, dim_attn, bias=False)
        self.v = nn.Linear(dim, dim_attn, bias=False)
        self.o = nn.Linear(dim_attn, dim, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos_bias: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape[0], self.num_heads, self.head_dim
        q = self.q(x).view(b, -1, n, c)  # [B, L, H, D]
        k = self.k(x).view(b, -1, n, c)
        v = self.v(x).view(b, -1, n, c)
        # bias = relative position + (most negative value where the key is padding)
        bias = x.new_zeros(b, n, q.shape[1], k.shape[1]) + pos_bias
        bias = bias.masked_fill(mask.view(b, 1, 1, -1) == 0, torch.finfo(x.dtype).min)
        # T5 folds the 1/sqrt(d) scale into its weights: none here.
        logits = torch.einsum("binc,bjnc->bnij", q, k) + bias  # [B, H, Lq, Lk]
        attn = F.softmax(logits.float(), dim=-1).type_as(logits)  # softmax in float32
        out = torch.einsum("bnij,bjnc->binc", attn, v).reshape(b, -1, n * c)
        return self.o(out)


class T5FeedForward(nn.Module):
    """Gated GELU: ``fc2(fc1(x) * gelu_tanh(gate(x)))``."""

    def __init__(self, dim: int, dim_ffn: int):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(dim, dim_ffn, bias=False), nn.GELU(approximate="tanh"))
        self.fc1 = nn.Linear(dim, dim_ffn, bias=False)
        self.fc2 = nn.Linear(dim_ffn, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x) * self.gate(x))


class T5Block(nn.Module):
    def __init__(self, cfg: T5Config):
        super().__init__()
        self.norm1 = T5Norm(cfg.dim, cfg.eps)
        self.attn = T5Attention(cfg.dim, cfg.dim_attn, cfg.num_heads)
        self.norm2 = T5Norm(cfg.dim, cfg.eps)
        self.ffn = T5FeedForward(cfg.dim, cfg.dim_ffn)
        self.pos_embedding = RelativeBias(cfg.num_buckets, cfg.num_heads, cfg.max_distance)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pos_bias = self.pos_embedding(x.shape[1], x.shape[1])
        x = _fp16_clamp(x + self.attn(self.norm1(x), mask, pos_bias))
        return _fp16_clamp(x + self.ffn(self.norm2(x)))


def _fp16_clamp(x: torch.Tensor) -> torch.Tensor:
    # float16 overflows in the FFN of large T5s; the reference clamps (no-op otherwise).
    if x.dtype == torch.float16 and torch.isinf(x).any():
        limit = torch.finfo(x.dtype).max - 1000
        x = x.clamp(-limit, limit)
    return x


class UMT5Encoder(nn.Module):
    """umT5 encoder: token ids [B, L] + mask [B, L] -> hidden states [B, L, dim]."""

    def __init__(self, cfg: T5Config = T5Config()):
        super().__init__()
        self.cfg = cfg
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.blocks = nn.ModuleList([T5Block(cfg) for _ in range(cfg.num_layers)])
        self.norm = T5Norm(cfg.dim, cfg.eps)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(ids)  # [B, L, dim]
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)


@torch.no_grad()
def encode_text(encoder: UMT5Encoder, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """What the pipeline feeds the DiT: encoder output with every row at a position >= the
    prompt's token count (``mask.sum``, ``</s>`` included) set to zero.  [B, L, dim]"""
    device = encoder.token_embedding.weight.device
    ids, mask = ids.to(device), mask.to(device)
    out = encoder(ids, mask)
    lengths = mask.gt(0).sum(dim=1)  # [B]
    keep = torch.arange(ids.shape[1], device=device)[None, :] < lengths[:, None]  # [B, L]
    return out.masked_fill(~keep[..., None], 0.0)
