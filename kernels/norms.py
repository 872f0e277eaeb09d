"""Norms of the Wan DiT block: LayerNorm fused with the modulation, and RMSNorm over the full width.

References (FORMATS.md section 2): LayerNorm without affine, eps 1e-6, then
``x * (1 + scale) + shift`` with float32 modulation; q/k RMSNorm over the whole model width
(not per head).  The "fast" variant (TurboDiffusion FastRMSNorm) multiplies by the weight in
float32 and casts once; the "default" one (original Wan) casts to the input dtype first.

This file holds the plain-torch references and the public launchers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def layer_norm_modulate_reference(
    x: torch.Tensor, shift: torch.Tensor | None, scale: torch.Tensor | None, eps: float = 1e-6
) -> torch.Tensor:
    """LN(x) * (1 + scale) + shift over the last dim, in float32; returns x's dtype.

    x: [B, L, C]; shift, scale: broadcastable to it (e.g. [B, 1, C]); None skips the modulation.
    """
    h = F.layer_norm(x.float(), (x.shape[-1],), eps=eps)
    if scale is not None:
        h = h * (1 + scale.float())
    if shift is not None:
        h = h + shift.float()
    return h.to(x.dtype)


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6, fast: bool = True) -> torch.Tensor:
    """RMSNorm over the last dim.  ``fast``: weight applied in float32 (FastRMSNorm); else Wan's order."""
    xf = x.float()
    h = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps)
    if fast:
        return (h * weight.float()).to(x.dtype)
    return h.to(x.dtype) * weight.to(x.dtype)


def layer_norm_modulate(x, shift, scale, eps: float = 1e-6):
    """Fused LayerNorm + modulation; the Triton kernel on CUDA, the reference elsewhere."""
    if x.is_cuda:
        try:
            from kernels import norms_triton
        except ImportError:
            norms_triton = None
        if norms_triton is not None and norms_triton.available():
            return norms_triton.layer_norm_modulate(x, shift, scale, eps)
    return layer_norm_modulate_reference(x, shift, scale, eps)


def rms_norm(x, weight, eps: float = 1e-6, fast: bool = True):
    """RMSNorm over the full width; the Triton kernel on CUDA (fast variant), the reference elsewhere."""
    if x.is_cuda and fast:
        try:
            from kernels import norms_triton
        except ImportError:
            norms_triton = None
        if norms_triton is not None and norms_triton.available():
            return norms_triton.rms_norm(x, weight, eps)
    return rms_norm_reference(x, weight, eps, fast)
