"""SLA: sparse-linear attention (block-sparse softmax attention + a linear branch).

Math follows shared/reference/FORMATS.md section 4 (TurboDiffusion SLA/core.py):

1. block scores: mean-pool q in blocks of ``blkq`` rows and the sequence-centred k
   ("smooth-k") in blocks of ``blkk`` rows; score = pooled_q @ pooled_k^T (no scale);
2. every query block keeps its ``n = min(K, int(topk * K))`` best key blocks;
3. sparse branch: softmax attention (scale D^-0.5) over the selected key blocks only;
4. linear branch over all keys with phi = softmax over the head dimension, then ``proj_l``;
5. output = sparse + proj_l(linear), in the input dtype.

This file holds the plain-torch reference (runs anywhere, the CPU path) and the
public launcher :func:`sla_attention`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BLKQ = 128  # query block rows (reference SparseLinearAttention(BLKQ=128, BLKK=64))
BLKK = 64  # key block rows


def selected_blocks(topk: float, num_key_blocks: int) -> int:
    """Key blocks kept per query block: the reference's ``int(topk * K)`` (a Python float product).

    The reference yields NaN when this is 0 (an empty softmax); we keep at least one block.
    """
    return max(1, min(num_key_blocks, int(topk * num_key_blocks)))


def _pool_blocks(x: torch.Tensor, blk: int) -> torch.Tensor:
    """Mean of each block of ``blk`` rows along dim 2; the last, partial block averages what it has.

    x: [B, H, L, D] -> [B, H, ceil(L/blk), D] (computed in float32)
    """
    B, H, L, D = x.shape
    n = -(-L // blk)
    pad = n * blk - L
    xf = x.float()
    if pad:
        xf = F.pad(xf, (0, 0, 0, pad))
    sums = xf.view(B, H, n, blk, D).sum(dim=3)
    counts = torch.full((n,), float(blk), device=x.device)
    counts[-1] = blk - pad
    return sums / counts[:, None]


def sla_block_scores(q: torch.Tensor, k: torch.Tensor, blkq: int = BLKQ, blkk: int = BLKK) -> torch.Tensor:
    """Block scores [B, H, nQ, nK] for q, k in [B, H, L, D], in the input dtype."""
    k_smooth = k.float() - k.float().mean(dim=2, keepdim=True)
    pq = _pool_blocks(q, blkq).to(q.dtype)
    pk = _pool_blocks(k_smooth, blkk).to(q.dtype)
    return pq @ pk.transpose(-1, -2)


def sla_block_map(
    q: torch.Tensor, k: torch.Tensor, topk: float, blkq: int = BLKQ, blkk: int = BLKK
) -> torch.Tensor:
    """Boolean block map [B, H, nQ, nK]: True where the sparse branch attends (q, k: [B, H, L, D])."""
    scores = sla_block_scores(q, k, blkq, blkk)
    n = selected_blocks(topk, scores.shape[-1])
    idx = scores.float().topk(n, dim=-1).indices
    block_map = torch.zeros_like(scores, dtype=torch.bool)
    block_map.scatter_(-1, idx, True)
    return block_map


def sparse_attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_map: torch.Tensor,
    blkq: int = BLKQ, blkk: int = BLKK,
) -> torch.Tensor:
    """Softmax attention restricted to the key blocks in ``block_map``; q, k, v: [B, H, L, D] -> float32.

    Loops over query blocks so memory stays at [B, H, blkq, L] (480p has L = 32,760).
    """
    B, H, L, D = q.shape
    scale = D**-0.5
    kf, vf = k.float(), v.float()
    key_block = torch.arange(L, device=q.device) // blkk  # [L]
    out = torch.empty(B, H, L, D, dtype=torch.float32, device=q.device)
    for i in range(block_map.shape[2]):
        rows = slice(i * blkq, min(L, (i + 1) * blkq))
        s = (q[:, :, rows].float() @ kf.transpose(-1, -2)) * scale  # [B, H, r, L]
        allowed = block_map[:, :, i, :][..., key_block]  # [B, H, L]
        s = s.masked_fill(~allowed[:, :, None, :], float("-inf"))
        out[:, :, rows] = torch.softmax(s, dim=-1) @ vf
    return out


def linear_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Linear branch over all keys, before proj_l; q, k, v: [B, H, L, D] -> float32 [B, H, L, D]."""
    phi_q = torch.softmax(q.float(), dim=-1)
    phi_k = torch.softmax(k.float(), dim=-1)
    kv = phi_k.transpose(-1, -2) @ v.float()  # [B, H, D, D]
    k_sum = phi_k.sum(dim=2)  # [B, H, D]
    denom = 1e-5 + (phi_q * k_sum[:, :, None, :]).sum(-1, keepdim=True)  # eps from SLA/core.py
    return (phi_q @ kv) / denom


def sla_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    proj_weight: torch.Tensor, proj_bias: torch.Tensor | None, topk: float,
    blkq: int = BLKQ, blkk: int = BLKK, return_parts: bool = False,
):
    """Plain-torch SLA.  q, k, v: [B, L, H, D] (after RoPE) -> [B, L, H, D] in q's dtype."""
    qh, kh, vh = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, L, D]
    block_map = sla_block_map(qh, kh, topk, blkq, blkk)
    o_sparse = sparse_attention_reference(qh, kh, vh, block_map, blkq, blkk)
    o_lin = linear_attention_reference(qh, kh, vh)
    o_lin = F.linear(o_lin, proj_weight.float(), None if proj_bias is None else proj_bias.float())
    out = (o_sparse + o_lin).to(q.dtype).transpose(1, 2)
    if return_parts:
        return out, {"block_map": block_map, "o_sparse": o_sparse, "o_linear": o_lin,
                     "block_scores": sla_block_scores(qh, kh, blkq, blkk)}
    return out


def sla_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    proj_weight: torch.Tensor, proj_bias: torch.Tensor | None, topk: float,
) -> torch.Tensor:
    """SLA on [B, L, H, D] tensors; the fused Triton kernel on CUDA, the reference elsewhere."""
    if q.is_cuda:
        try:
            from kernels import sla_triton
        except ImportError:
            sla_triton = None
        if sla_triton is not None and sla_triton.available():
            return sla_triton.sla_forward(q, k, v, proj_weight, proj_bias, topk)
    return sla_reference(q, k, v, proj_weight, proj_bias, topk)
