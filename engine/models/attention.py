"""Self-attention backends of the Wan DiT, behind one small registry.

Every backend is an ``nn.Module`` called as ``backend(q, k, v, topk)`` on [B, L, H, D] tensors
(after RoPE) and returning [B, L, H, D].  ``topk`` is the SLA ratio of the current call (ignored
by ``original``), so it can change from one call to the next without rebuilding anything.

* ``original``: dense softmax attention (``F.scaled_dot_product_attention``); no parameters.
* ``sla``: sparse-linear attention (:func:`kernels.sla.sla_attention`) with its ``proj_l``.
* ``sagesla``: same parameters as ``sla``; on CUDA it uses ``kernels.sla.sagesla_attention``
  when that kernel exists, otherwise (and always on CPU) it is ``sla``.
* ``spargeattn``: SageSLA with the optional SpargeAttn package's sparse kernel
  (:func:`kernels.sparge.spargeattn_attention`); the engine refuses it at start where it cannot
  run (:func:`kernels.sparge.unavailable_reason`).

:class:`AttnOp` wraps the backend as ``local_attn`` so the parameter names read
``self_attn.attn_op.local_attn.proj_l.*`` like the reference's ``MinimalA2AAttnOp`` (FORMATS.md
section 4) and the published checkpoints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import kernels.sla as sla_kernels
import kernels.sparge as sparge_kernels


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention with scale D^-0.5, no mask.  q: [B, Lq, H, D], k/v: [B, Lk, H, D] -> [B, Lq, H, D]."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


class DenseAttention(nn.Module):
    """``original``: the reference's dense attention; loads SLA checkpoints by ignoring proj_l."""

    def __init__(self, head_dim: int):
        super().__init__()

    def forward(self, q, k, v, topk: float) -> torch.Tensor:
        return dense_attention(q, k, v)


class SparseLinearAttention(nn.Module):
    """``sla``: block-sparse softmax attention plus a linear branch projected by ``proj_l``.

    One ``proj_l`` Linear(head_dim, head_dim) per layer, shared by all heads (SLA/core.py).
    """

    def __init__(self, head_dim: int):
        super().__init__()
        self.proj_l = nn.Linear(head_dim, head_dim)

    def forward(self, q, k, v, topk: float) -> torch.Tensor:
        return sla_kernels.sla_attention(q, k, v, self.proj_l.weight, self.proj_l.bias, topk)


class SageSparseLinearAttention(SparseLinearAttention):
    """``sagesla``: SLA with the int8/fp8 sparse branch where a kernel is available (CUDA only)."""

    def forward(self, q, k, v, topk: float) -> torch.Tensor:
        # Looked up per call: the kernel module may gain this function without a reload of ours.
        sagesla = getattr(sla_kernels, "sagesla_attention", None)
        if q.is_cuda and sagesla is not None:
            return sagesla(q, k, v, self.proj_l.weight, self.proj_l.bias, topk)
        return sla_kernels.sla_attention(q, k, v, self.proj_l.weight, self.proj_l.bias, topk)


class SpargeSparseLinearAttention(SparseLinearAttention):
    """``spargeattn``: SageSLA whose sparse branch is the SpargeAttn package's kernel."""

    def forward(self, q, k, v, topk: float) -> torch.Tensor:
        return sparge_kernels.spargeattn_attention(q, k, v, self.proj_l.weight, self.proj_l.bias, topk)


BACKENDS: dict[str, type[nn.Module]] = {
    "original": DenseAttention,
    "sla": SparseLinearAttention,
    "sagesla": SageSparseLinearAttention,
    "spargeattn": SpargeSparseLinearAttention,
}


def has_proj_l(backend: str) -> bool:
    """Whether the backend owns a ``proj_l`` (i.e. expects SLA weights in the checkpoint)."""
    return issubclass(_backend_class(backend), SparseLinearAttention)


def _backend_class(backend: str) -> type[nn.Module]:
    try:
        return BACKENDS[backend]
    except KeyError:
        raise ValueError(f"unknown attention backend '{backend}' (known: {', '.join(BACKENDS)})") from None


class AttnOp(nn.Module):
    """Holder named like the reference (``attn_op.local_attn``) around one backend."""

    def __init__(self, backend: str, head_dim: int):
        super().__init__()
        self.backend = backend
        self.local_attn = _backend_class(backend)(head_dim)

    def forward(self, q, k, v, topk: float) -> torch.Tensor:
        return self.local_attn(q, k, v, topk)
