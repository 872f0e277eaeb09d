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

from kernels._triton import HAS_TRITON, tl, triton


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


def rms_norm_rope_reference(
    x: torch.Tensor, weight: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, num_heads: int, eps: float = 1e-6
) -> torch.Tensor:
    """Fast RMSNorm over the full width, rounded to x's dtype, then RoPE in float32 (the DiT's order).

    x: [B, L, C]; cos, sin: float32 [L, D/2] -> [B, L, H, D] in x's dtype; pairs (2i, 2i+1) rotate by angle i.
    """
    B, L, C = x.shape
    h = rms_norm_reference(x, weight, eps, fast=True).float().view(B, L, num_heads, -1, 2)
    x0, x1 = h[..., 0], h[..., 1]  # [B, L, H, D/2]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).flatten(3).to(x.dtype)


def residual_layer_norm_reference(
    x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor | None, shift: torch.Tensor | None,
    scale: torch.Tensor | None, eps: float = 1e-6, *, affine: bool = False, norm: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The DiT block's residual step followed by its next norm, as separate torch ops.

    x_new = x + y * gate.to(x.dtype) (rounded like torch: product, then sum, in x's dtype; no gate:
    x + y); h = LN(x_new) * (1 + scale) + shift, or with ``affine`` LN(x_new) * scale + shift (norm3's
    weight and bias), in float32, cast to x's dtype.  Returns (x_new, h) (h None if not ``norm``).
    """
    x_new = x + (y * gate.to(x.dtype) if gate is not None else y)
    if not norm:
        return x_new, None
    if not affine:
        return x_new, layer_norm_modulate_reference(x_new, shift, scale, eps)
    h = F.layer_norm(x_new.float(), (x_new.shape[-1],), eps=eps)
    return x_new, (h * scale.float() + shift.float()).to(x.dtype)


def channel_rms_silu_reference(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """The Wan VAE's RMSNorm over channels (dim 1) and the SiLU after it: silu(normalize(x) * sqrt(C) * gamma)."""
    return F.silu(F.normalize(x, dim=1) * x.shape[1] ** 0.5 * gamma)


# ----------------------------------------------------------------------------------------
# Triton kernels (defined only where triton imports; compiled on first launch).
# ----------------------------------------------------------------------------------------

if HAS_TRITON:

    @triton.jit
    def _modulate_store(h, Y, SHIFT, SCALE, off, b, cols, mask, stride_shift, stride_scale,
                        HAS_SHIFT: tl.constexpr, HAS_SCALE: tl.constexpr):
        """h * (1 + scale[b]) + shift[b] (float32), stored in Y's dtype."""
        if HAS_SCALE:
            sc = tl.load(SCALE + b[:, None] * stride_scale + cols[None, :], mask=mask, other=0.0)
            h = h * (1.0 + sc.to(tl.float32))
        if HAS_SHIFT:
            sh = tl.load(SHIFT + b[:, None] * stride_shift + cols[None, :], mask=mask, other=0.0)
            h = h + sh.to(tl.float32)
        tl.store(Y + off, h.to(Y.dtype.element_ty), mask=mask)

    @triton.jit
    def _ln_modulate_kernel(
        X, SHIFT, SCALE, Y, R, L, C, eps, stride_shift, stride_scale,
        HAS_SHIFT: tl.constexpr, HAS_SCALE: tl.constexpr, ROWS: tl.constexpr, BLOCK_C: tl.constexpr,
        BLOCK_C2: tl.constexpr,
    ):
        """ROWS rows of x [R = B*L, C]: LayerNorm (no affine, float32) * (1 + scale[b]) + shift[b].

        A row is read as one tile of BLOCK_C columns, plus (BLOCK_C2 > 0) a second tile of
        BLOCK_C2 columns from BLOCK_C on, so a width like 1536 = 1024 + 512 or 5120 = 4096 + 1024
        wastes no masked lanes (a single power-of-two tile would be 2048 / 8192 wide)."""
        rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
        cols = tl.arange(0, BLOCK_C)
        rmask = rows < R
        mask = rmask[:, None] & (cols < C)[None, :]
        off = rows.to(tl.int64)[:, None] * C + cols[None, :]
        x = tl.load(X + off, mask=mask, other=0.0).to(tl.float32)
        total = tl.sum(x, axis=1)
        if BLOCK_C2 > 0:
            cols2 = BLOCK_C + tl.arange(0, BLOCK_C2)
            mask2 = rmask[:, None] & (cols2 < C)[None, :]
            off2 = rows.to(tl.int64)[:, None] * C + cols2[None, :]
            x2 = tl.load(X + off2, mask=mask2, other=0.0).to(tl.float32)
            total += tl.sum(x2, axis=1)
        mean = total / C
        xc = tl.where(mask, x - mean[:, None], 0.0)
        ss = tl.sum(xc * xc, axis=1)
        if BLOCK_C2 > 0:
            xc2 = tl.where(mask2, x2 - mean[:, None], 0.0)
            ss += tl.sum(xc2 * xc2, axis=1)
        rstd = tl.math.rsqrt(ss / C + eps)
        b = (rows // L).to(tl.int64)
        _modulate_store(xc * rstd[:, None], Y, SHIFT, SCALE, off, b, cols, mask, stride_shift, stride_scale,
                        HAS_SHIFT, HAS_SCALE)
        if BLOCK_C2 > 0:
            _modulate_store(xc2 * rstd[:, None], Y, SHIFT, SCALE, off2, b, cols2, mask2, stride_shift,
                            stride_scale, HAS_SHIFT, HAS_SCALE)

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

    @triton.jit
    def _rms_norm_rope_kernel(X, W, COS, SIN, Y, R, L, C, stride_x, stride_y, eps,
                              HALF_D: tl.constexpr, ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
        """ROWS rows of x [R = B*L, C] (row stride ``stride_x``): RMSNorm (float32, weight, rounded
        to the output dtype like the unfused path), then RoPE on the pairs (2i, 2i+1) of each head."""
        rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
        cols = tl.arange(0, BLOCK_C)
        mask = (rows < R)[:, None] & (cols < C)[None, :]
        r64 = rows.to(tl.int64)[:, None]
        x = tl.load(X + r64 * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        rstd = tl.math.rsqrt(tl.sum(x * x, axis=1) / C + eps)
        w = tl.load(W + cols, mask=cols < C, other=0.0).to(tl.float32)
        h = (x * rstd[:, None] * w[None, :]).to(Y.dtype.element_ty).to(tl.float32)
        h0, h1 = tl.split(tl.reshape(h, (ROWS, BLOCK_C // 2, 2)))  # [ROWS, BLOCK_C/2] each
        pair = tl.arange(0, BLOCK_C // 2)
        pmask = (rows < R)[:, None] & (pair < C // 2)[None, :]
        a_off = (rows % L).to(tl.int64)[:, None] * HALF_D + (pair % HALF_D)[None, :]
        c = tl.load(COS + a_off, mask=pmask, other=0.0)
        s = tl.load(SIN + a_off, mask=pmask, other=0.0)
        out = tl.reshape(tl.join(h0 * c - h1 * s, h0 * s + h1 * c), (ROWS, BLOCK_C))
        tl.store(Y + r64 * stride_y + cols[None, :], out.to(Y.dtype.element_ty), mask=mask)

    @triton.jit
    def _residual_ln_kernel(
        X, Yin, G, SHIFT, SCALE, XO, H, R, L, C, eps, stride_g, stride_shift, stride_scale,
        HAS_GATE: tl.constexpr, HAS_SHIFT: tl.constexpr, HAS_SCALE: tl.constexpr, AFFINE: tl.constexpr,
        NORM: tl.constexpr, ROWS: tl.constexpr, BLOCK_C: tl.constexpr,
    ):
        """x_new = x + y * gate (rounded as torch rounds: gate, product and sum each to x's dtype),
        then optionally LayerNorm(x_new) * (1 + scale) + shift (AFFINE: * scale + shift)."""
        rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
        cols = tl.arange(0, BLOCK_C)
        rmask = rows < R
        cmask = cols < C
        mask = rmask[:, None] & cmask[None, :]
        off = rows.to(tl.int64)[:, None] * C + cols[None, :]
        b = (rows // L).to(tl.int64)
        x = tl.load(X + off, mask=mask, other=0.0).to(tl.float32)
        y = tl.load(Yin + off, mask=mask, other=0.0).to(tl.float32)
        if HAS_GATE:
            g = tl.load(G + b[:, None] * stride_g + cols[None, :], mask=mask, other=0.0)
            g = g.to(XO.dtype.element_ty).to(tl.float32)
            y = (y * g).to(XO.dtype.element_ty).to(tl.float32)
        xn = (x + y).to(XO.dtype.element_ty)
        tl.store(XO + off, xn, mask=mask)
        if NORM:
            xf = xn.to(tl.float32)
            mean = tl.sum(xf, axis=1) / C
            xc = tl.where(mask, xf - mean[:, None], 0.0)
            rstd = tl.math.rsqrt(tl.sum(xc * xc, axis=1) / C + eps)
            h = xc * rstd[:, None]
            if HAS_SCALE:
                sc = tl.load(SCALE + b[:, None] * stride_scale + cols[None, :], mask=mask, other=0.0).to(tl.float32)
                if AFFINE:
                    h = h * sc
                else:
                    h = h * (1.0 + sc)
            if HAS_SHIFT:
                sh = tl.load(SHIFT + b[:, None] * stride_shift + cols[None, :], mask=mask, other=0.0)
                h = h + sh.to(tl.float32)
            tl.store(H + off, h.to(H.dtype.element_ty), mask=mask)

    @triton.jit
    def _channel_rms_silu_kernel(X, GAMMA, BIAS, Y, C, S, stride_b, stride_c, stride_s,
                                 stride_yb, stride_yc, stride_ys, scale,
                                 HAS_BIAS: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
        """BLOCK_S positions of x viewed as [B, C, S] (any strides): x / max(||x||_C, 1e-12) *
        sqrt(C) * gamma, then SiLU, in float32, cast once, into y viewed the same way.  HAS_BIAS:
        x is first ``x + bias`` (per channel) rounded to x's dtype, as a separate add would give."""
        s_idx = tl.program_id(0) * BLOCK_S + tl.arange(0, BLOCK_S)
        cols = tl.arange(0, BLOCK_C)
        mask = (cols < C)[:, None] & (s_idx < S)[None, :]
        off = tl.program_id(1).to(tl.int64) * stride_b + cols.to(tl.int64)[:, None] * stride_c \
            + s_idx.to(tl.int64)[None, :] * stride_s
        x = tl.load(X + off, mask=mask, other=0.0)  # [BLOCK_C, BLOCK_S]
        if HAS_BIAS:
            bias = tl.load(BIAS + cols, mask=cols < C, other=0.0).to(tl.float32)
            x = (x.to(tl.float32) + bias[:, None]).to(x.dtype)
        x = x.to(tl.float32)
        inv = 1.0 / tl.maximum(tl.sqrt(tl.sum(x * x, axis=0)), 1e-12)
        gm = tl.load(GAMMA + cols, mask=cols < C, other=0.0).to(tl.float32)
        h = x * inv[None, :] * scale * gm[:, None]
        h = h / (1.0 + tl.exp(-h))
        y_off = tl.program_id(1).to(tl.int64) * stride_yb + cols.to(tl.int64)[:, None] * stride_yc \
            + s_idx.to(tl.int64)[None, :] * stride_ys
        tl.store(Y + y_off, h.to(Y.dtype.element_ty), mask=mask)


# ----------------------------------------------------------------------------------------
# Launchers.
# ----------------------------------------------------------------------------------------


def triton_usable(t: torch.Tensor) -> bool:
    """True when the Triton path can run on ``t``'s device (CUDA, triton importable)."""
    # The kernels are forward-only: where autograd needs this tensor's gradient (training),
    # the reference runs.
    return HAS_TRITON and t.is_cuda and not (t.requires_grad and torch.is_grad_enabled())


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


def _ln_config(C: int) -> tuple[bool, int, int]:
    """Launch configuration of the LayerNorm + modulation kernel, (split the row into two
    power-of-two tiles, rows per program, warps): split tiles, 4 warps, rows for ~4K elements per
    program -- the best of 10 variants on an H100
    (2026-11-22, bench/kernels.py --variants) at both Wan widths -- 2 rows at C = 1536 (81% of the
    copy bandwidth; the single 2048-wide tile 79%) and 1 row at C = 5120 (97%; 2 rows 82%)."""
    rows = 1
    while rows < 16 and rows * 2 * C <= 4096:
        rows *= 2
    return True, rows, 4


def _split_widths(C: int) -> tuple[int, int]:
    """(first tile, second tile) widths covering C: the largest power of two <= C, then the
    power of two covering the rest (0 when C is a power of two)."""
    c1 = 1 << (C.bit_length() - 1)
    return c1, (triton.next_power_of_2(C - c1) if C > c1 else 0)


def layer_norm_modulate(x, shift, scale, eps: float = 1e-6, config: tuple[bool, int, int] | None = None):
    """Fused LayerNorm + modulation; the Triton kernel on CUDA, the reference elsewhere.

    x: [B, L, C]; shift, scale: [B, 1, C] (float32) or None; returns x's dtype.  ``config``:
    (split, rows, warps) of the launch (default :func:`_ln_config` of the width; benchmarks sweep it).
    """
    if triton_usable(x) and x.dim() == 3:
        B, L, C = x.shape
        sh, s_sh = _per_batch(shift, B, C)
        sc, s_sc = _per_batch(scale, B, C)
        if sh is not False and sc is not False:
            xc = x.contiguous()
            y = torch.empty_like(xc)
            split, rows, warps = config or _ln_config(C)
            block_c, block_c2 = _split_widths(C) if split else (triton.next_power_of_2(C), 0)
            R = B * L
            _ln_modulate_kernel[(triton.cdiv(R, rows),)](
                xc, sh if sh is not None else xc, sc if sc is not None else xc, y, R, L, C, eps,
                s_sh, s_sc, HAS_SHIFT=sh is not None, HAS_SCALE=sc is not None,
                ROWS=rows, BLOCK_C=block_c, BLOCK_C2=block_c2, num_warps=warps,
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


def rms_norm_rope(x, weight, cos, sin, num_heads: int, eps: float = 1e-6, out=None):
    """Fast RMSNorm over the full width fused with RoPE: x [B, L, C] (rows may be strided, e.g. a
    slice of a fused q/k/v output) -> [B, L, H, D].  ``out`` ([B, L, C]-shaped, may alias x) receives
    the result on the Triton path; elsewhere the reference runs and ``out`` is ignored."""
    B, L, C = x.shape
    if triton_usable(x) and x.stride(-1) == 1 and x.stride(0) == L * x.stride(1):
        if out is None:
            out = torch.empty(B, L, C, device=x.device, dtype=x.dtype)
        block_c, rows, warps = _row_block(C)
        R = B * L
        _rms_norm_rope_kernel[(triton.cdiv(R, rows),)](
            x, weight.contiguous(), cos.contiguous(), sin.contiguous(), out, R, L, C, x.stride(1), out.stride(1),
            eps, HALF_D=C // num_heads // 2, ROWS=rows, BLOCK_C=block_c, num_warps=warps,
        )
        return out.view(B, L, num_heads, C // num_heads) if out.is_contiguous() else \
            out.unflatten(-1, (num_heads, C // num_heads))
    return rms_norm_rope_reference(x, weight, cos, sin, num_heads, eps)


def residual_layer_norm(x, y, gate, shift, scale, eps: float = 1e-6, *, affine: bool = False, norm: bool = True):
    """Fused residual step + next norm of the DiT block (see :func:`residual_layer_norm_reference`).

    x, y: [B, L, C] in the model dtype; gate, shift, scale: [B or 1, 1, C] or None.
    Returns (x_new, h); one read of x and y, one write of each output on the Triton path.
    """
    if triton_usable(x) and x.dim() == 3 and y.shape == x.shape:
        B, L, C = x.shape
        g, s_g = _per_batch(gate, B, C)
        sh, s_sh = _per_batch(shift, B, C)
        sc, s_sc = _per_batch(scale, B, C)
        if g is not False and sh is not False and sc is not False:
            xc, yc = x.contiguous(), y.contiguous()
            x_new = torch.empty_like(xc)
            h = torch.empty_like(xc) if norm else x_new
            block_c, rows, warps = _row_block(C)
            R = B * L
            _residual_ln_kernel[(triton.cdiv(R, rows),)](
                xc, yc, g if g is not None else xc, sh if sh is not None else xc, sc if sc is not None else xc,
                x_new, h, R, L, C, eps, s_g, s_sh, s_sc,
                HAS_GATE=g is not None, HAS_SHIFT=sh is not None, HAS_SCALE=sc is not None, AFFINE=affine,
                NORM=norm, ROWS=rows, BLOCK_C=block_c, num_warps=warps,
            )
            return x_new, (h if norm else None)
    return residual_layer_norm_reference(x, y, gate, shift, scale, eps, affine=affine, norm=norm)


def channel_bias(bias: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-channel [C] bias in ``like``'s dtype, shaped to broadcast over [B, C, *spatial] (also
    used by kernels.vae): added in x's dtype, as a convolution's separate bias add would be."""
    return bias.to(like.dtype).view(1, -1, *([1] * (like.dim() - 2)))


def _bcs_strides(t: torch.Tensor) -> tuple[int, ...] | None:
    """Strides of a [B, C, *spatial] tensor seen as [B, C, S], or None when the spatial dims do not
    flatten to one stride (also used by kernels.vae)."""
    try:
        return t.view(t.shape[0], t.shape[1], -1).stride()
    except RuntimeError:
        return None


def channel_rms_silu(x: torch.Tensor, gamma: torch.Tensor, out: torch.Tensor | None = None,
                     bias: torch.Tensor | None = None) -> torch.Tensor:
    """The VAE's channel RMSNorm + SiLU in one pass on CUDA (contiguous or channels-last 3-D
    input; the output keeps the layout), the reference elsewhere.  x: [B, C, T, H, W].

    ``out`` (CUDA): write the result there instead -- any tensor of x's shape and dtype whose
    T, H, W flatten to one stride, e.g. the slot of a causal-cache buffer the next convolution
    reads (:meth:`engine.models.wan_vae.CausalCache.slot`).  ``bias`` [C]: normalise ``x + bias``
    (the bias of the convolution that produced x, added here instead of in a pass of its own)."""
    if bias is not None:
        bias = bias.to(x.dtype).contiguous()  # added as a separate add would: in x's dtype
        if not (triton_usable(x) and x.dim() == 5):
            x = x + channel_bias(bias, x)
            bias = None
    if triton_usable(x) and x.dim() == 5:
        B, C = x.shape[:2]
        S = x.shape[2] * x.shape[3] * x.shape[4]
        xs = _bcs_strides(x)
        if xs is None:
            x = x.contiguous()
            xs = _bcs_strides(x)
        if out is not None and (out.shape != x.shape or out.dtype != x.dtype or _bcs_strides(out) is None):
            raise ValueError(f"channel_rms_silu out: need shape {tuple(x.shape)} and {x.dtype} with T, H, W "
                             f"flattening to one stride, got {tuple(out.shape)} {out.dtype} {out.stride()}")
        y = torch.empty_like(x) if out is None else out  # empty_like preserves the layout
        ys = _bcs_strides(y)
        block_c = triton.next_power_of_2(C)
        block_s = max(16, 8192 // block_c)
        _channel_rms_silu_kernel[(triton.cdiv(S, block_s), B)](
            x, gamma.reshape(-1).contiguous(), bias if bias is not None else x, y, C, S, *xs, *ys,
            float(C) ** 0.5, HAS_BIAS=bias is not None, BLOCK_C=block_c, BLOCK_S=block_s, num_warps=8,
        )
        return y
    y = channel_rms_silu_reference(x, gamma)
    return y if out is None else out.copy_(y)
