"""Norms of the Wan DiT block: LayerNorm fused with the modulation, and RMSNorm over the full width.

References (FORMATS.md section 2): LayerNorm without affine, eps 1e-6, then
``x * (1 + scale) + shift`` with float32 modulation; q/k RMSNorm over the whole model width
(not per head).  The "fast" variant (TurboDiffusion FastRMSNorm) multiplies by the weight in
float32 and casts once; the "default" one (original Wan) casts to the input dtype first.

This file holds, in order: the plain-torch references, the Triton kernels (defined only where
``import triton`` works; nothing compiles at import) and the public launchers.  Each kernel
reads a block of rows once, reduces in float32 and writes once (one pass over memory).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

try:  # CPU-only machines may lack triton; the references still work there.
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover - depends on the machine
    triton = None
    tl = None
    HAS_TRITON = False


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



# ----------------------------------------------------------------------------------------
# Triton kernels (defined only where triton imports; compiled on first launch).
# ----------------------------------------------------------------------------------------

if HAS_TRITON:

    @triton.jit
    def _ln_modulate_kernel(
        X, SHIFT, SCALE, Y, R, L, C, eps, stride_shift, stride_scale,
        HAS_SHIFT: tl.constexpr, HAS_SCALE: tl.constexpr, ROWS: tl.constexpr, BLOCK_C: tl.constexpr,
    ):
        """ROWS rows of x [R = B*L, C]: LayerNorm (no affine, float32) * (1 + scale[b]) + shift[b]."""
        rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
        cols = tl.arange(0, BLOCK_C)
        rmask = rows < R
        cmask = cols < C
        mask = rmask[:, None] & cmask[None, :]
        off = rows.to(tl.int64)[:, None] * C + cols[None, :]
        x = tl.load(X + off, mask=mask, other=0.0).to(tl.float32)
        mean = tl.sum(x, axis=1) / C
        xc = tl.where(mask, x - mean[:, None], 0.0)
        rstd = tl.math.rsqrt(tl.sum(xc * xc, axis=1) / C + eps)
        h = xc * rstd[:, None]
        b = (rows // L).to(tl.int64)
        if HAS_SCALE:
            sc = tl.load(SCALE + b[:, None] * stride_scale + cols[None, :], mask=mask, other=0.0)
            h = h * (1.0 + sc.to(tl.float32))
        if HAS_SHIFT:
            sh = tl.load(SHIFT + b[:, None] * stride_shift + cols[None, :], mask=mask, other=0.0)
            h = h + sh.to(tl.float32)
        tl.store(Y + off, h.to(Y.dtype.element_ty), mask=mask)

    @triton.jit
    def _rms_norm_kernel(X, W, Y, R, C, eps, ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
        """ROWS rows of x [R, C]: x * rsqrt(mean(x^2) + eps) * weight, in float32, cast once."""
        rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
        cols = tl.arange(0, BLOCK_C)
        mask = (rows < R)[:, None] & (cols < C)[None, :]
        off = rows.to(tl.int64)[:, None] * C + cols[None, :]
        x = tl.load(X + off, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.math.rsqrt(tl.sum(x * x, axis=1) / C + eps)
        w = tl.load(W + cols, mask=cols < C, other=0.0).to(tl.float32)
        tl.store(Y + off, (x * rstd[:, None] * w[None, :]).to(Y.dtype.element_ty), mask=mask)


# ----------------------------------------------------------------------------------------
# Launchers.
# ----------------------------------------------------------------------------------------


def triton_usable(t: torch.Tensor) -> bool:
    """True when the Triton path can run on ``t``'s device (CUDA, triton importable)."""
    return HAS_TRITON and t.is_cuda


def _row_block(C: int) -> tuple[int, int, int]:
    """(BLOCK_C, ROWS, num_warps): about 8K elements per program."""
    block_c = triton.next_power_of_2(C)
    rows = max(1, min(16, 8192 // block_c))
    return block_c, rows, 8 if block_c * rows >= 8192 else 4


def _per_batch(t: torch.Tensor | None, B: int, C: int):
    """(tensor, batch stride) for a modulation tensor of shape [B or 1, 1, C]; None if unsupported."""
    if t is None:
        return None, 0
    if t.dim() != 3 or t.shape[1] != 1 or t.shape[2] != C or t.shape[0] not in (1, B) or t.stride(2) != 1:
        return False, 0
    return t, (t.stride(0) if t.shape[0] > 1 else 0)


def layer_norm_modulate(x, shift, scale, eps: float = 1e-6):
    """Fused LayerNorm + modulation; the Triton kernel on CUDA, the reference elsewhere.

    x: [B, L, C]; shift, scale: [B, 1, C] (float32) or None; returns x's dtype.
    """
    if triton_usable(x) and x.dim() == 3:
        B, L, C = x.shape
        sh, s_sh = _per_batch(shift, B, C)
        sc, s_sc = _per_batch(scale, B, C)
        if sh is not False and sc is not False:
            xc = x.contiguous()
            y = torch.empty_like(xc)
            block_c, rows, warps = _row_block(C)
            R = B * L
            _ln_modulate_kernel[(triton.cdiv(R, rows),)](
                xc, sh if sh is not None else xc, sc if sc is not None else xc, y, R, L, C, eps,
                s_sh, s_sc, HAS_SHIFT=sh is not None, HAS_SCALE=sc is not None,
                ROWS=rows, BLOCK_C=block_c, num_warps=warps,
            )
            return y
    return layer_norm_modulate_reference(x, shift, scale, eps)


def rms_norm(x, weight, eps: float = 1e-6, fast: bool = True):
    """RMSNorm over the full width; the Triton kernel on CUDA (fast variant), the reference elsewhere."""
    if triton_usable(x) and fast:
        C = x.shape[-1]
        xc = x.contiguous()
        y = torch.empty_like(xc)
        block_c, rows, warps = _row_block(C)
        R = xc.numel() // C
        _rms_norm_kernel[(triton.cdiv(R, rows),)](
            xc, weight.contiguous(), y, R, C, eps, ROWS=rows, BLOCK_C=block_c, num_warps=warps,
        )
        return y
    return rms_norm_reference(x, weight, eps, fast)
