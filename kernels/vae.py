"""Memory-bound passes of the Wan VAE decoder: a convolution's bias, and the residual add after it.

On an H100 the 480p decode (latent [1, 16, 21, 60, 104] -> 81 frames) spent 111 ms of its 876 ms
of kernel time in torch adding convolution biases (PyTorch's cuDNN path convolves without the bias,
then ``add_``s it in a separate pass that runs at ~45% of the copy bandwidth on channels-last
3-D tensors); profile in BENCHMARKS.md, "VAE decode: fused biases".

:func:`channel_bias_add` -- ``round(y + bias)``, optionally ``+ round(r + r_bias)`` (the residual
  block's ``conv2(...) + shortcut(x)``), in one pass, in place into ``y`` or into ``out``.  The
  roundings are torch's (each add rounds to the tensor's dtype), so the values equal the unfused
  ops bit for bit.

This file holds, in order: the plain-torch references, the Triton kernels (defined only where
``import triton`` works; nothing compiles at import) and the public launchers.
"""

from __future__ import annotations

import torch

from kernels._triton import HAS_TRITON, tl, triton
from kernels.norms import _bcs_strides, channel_bias, triton_usable


def channel_bias_add_reference(
    y: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor | None = None,
    residual_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """(y + bias) + (residual + residual_bias) over dim 1, each add rounded to y's dtype (None: skipped)."""
    out = y if bias is None else y + channel_bias(bias, y)
    if residual is not None:
        r = residual if residual_bias is None else residual + channel_bias(residual_bias, residual)
        out = out + r
    return out


# ----------------------------------------------------------------------------------------
# Triton kernels (defined only where triton imports; compiled on first launch).
# ----------------------------------------------------------------------------------------

if HAS_TRITON:

    @triton.jit
    def _channel_bias_add_kernel(
        Y, BIAS, R, RBIAS, O, C, S,
        stride_yb, stride_yc, stride_ys, stride_rb, stride_rc, stride_rs, stride_ob, stride_oc, stride_os,
        HAS_BIAS: tl.constexpr, HAS_R: tl.constexpr, HAS_RBIAS: tl.constexpr,
        BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
    ):
        """BLOCK_S positions x all channels of tensors viewed as [B, C, S] (any strides)."""
        s_idx = tl.program_id(0) * BLOCK_S + tl.arange(0, BLOCK_S)
        cols = tl.arange(0, BLOCK_C)
        cmask = cols < C
        mask = cmask[:, None] & (s_idx < S)[None, :]
        b = tl.program_id(1).to(tl.int64)
        c64 = cols.to(tl.int64)[:, None]
        s64 = s_idx.to(tl.int64)[None, :]
        y = tl.load(Y + b * stride_yb + c64 * stride_yc + s64 * stride_ys, mask=mask, other=0.0)
        dt = y.dtype
        if HAS_BIAS:
            bias = tl.load(BIAS + cols, mask=cmask, other=0.0).to(tl.float32)
            y = (y.to(tl.float32) + bias[:, None]).to(dt)
        if HAS_R:
            r = tl.load(R + b * stride_rb + c64 * stride_rc + s64 * stride_rs, mask=mask, other=0.0)
            if HAS_RBIAS:
                rb = tl.load(RBIAS + cols, mask=cmask, other=0.0).to(tl.float32)
                r = (r.to(tl.float32) + rb[:, None]).to(dt)
            y = (y.to(tl.float32) + r.to(tl.float32)).to(dt)
        tl.store(O + b * stride_ob + c64 * stride_oc + s64 * stride_os, y, mask=mask)


# ----------------------------------------------------------------------------------------
# Launchers.
# ----------------------------------------------------------------------------------------


def channel_bias_add(
    y: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor | None = None,
    residual_bias: torch.Tensor | None = None, out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(y + bias) + (residual + residual_bias)`` per channel (dim 1), one pass on CUDA.

    Written into ``out``, or into ``y`` itself (in place) when ``out`` is None; each add rounds to
    y's dtype as torch's would.  y, residual, out: [B, C, ...] of one shape and dtype, any layout
    whose trailing dims flatten to one stride (contiguous or channels-last)."""
    target = y if out is None else out
    for name, t in (("residual", residual), ("out", out)):
        if t is not None and (t.shape != y.shape or t.dtype != y.dtype):
            raise ValueError(f"channel_bias_add: {name} {tuple(t.shape)} {t.dtype} does not match "
                             f"y {tuple(y.shape)} {y.dtype}")
    # the kernel adds the biases as the reference does: rounded to y's dtype first
    bias = None if bias is None else bias.to(y.dtype).contiguous()
    residual_bias = None if residual_bias is None else residual_bias.to(y.dtype).contiguous()
    strides = [_bcs_strides(t) for t in (y, residual if residual is not None else y, target)]
    if triton_usable(y) and y.dim() >= 3 and None not in strides and y.shape[1] <= 1024:
        B, C = y.shape[:2]
        S = y.numel() // max(1, B * C)
        block_c = triton.next_power_of_2(C)
        block_s = max(16, 8192 // block_c)
        dummy = y
        _channel_bias_add_kernel[(triton.cdiv(S, block_s), B)](
            y, bias if bias is not None else dummy, residual if residual is not None else dummy,
            residual_bias if residual_bias is not None else dummy, target, C, S,
            *strides[0], *strides[1], *strides[2],
            HAS_BIAS=bias is not None, HAS_R=residual is not None, HAS_RBIAS=residual_bias is not None,
            BLOCK_C=block_c, BLOCK_S=block_s, num_warps=8,
        )
        return target
    res = channel_bias_add_reference(y, bias, residual, residual_bias)
    return target.copy_(res) if res is not target else target

