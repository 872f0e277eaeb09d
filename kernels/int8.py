"""W8A8 int8 linear with 128x128 block scales (TurboDiffusion ``Int8Linear`` layout).

Quantization rule (FORMATS.md section 3, the reference's quant.hpp): per 128x128 tile of a
row-major [rows, cols] matrix, ``amax = max(1e-8, max|v|)``, ``q = round_half_even(v * (128 /
amax))`` saturated to [-128, 127], stored ``scale = amax / 128``.  The GEMM sums exact int32
dot products per 128-wide K tile, scales each by ``x_scale[m//128, t] * w_scale[n//128, t]``
and accumulates in float32; the result is cast to the activation dtype, then ``+ bias``.

This file holds the plain-torch reference and the public launchers.
"""

from __future__ import annotations

import torch

TILE = 128  # the reference's quantization tile and GEMM K tile


def _tiles(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Zero-pad a 2-D tensor to tile multiples and view it as [R/128, 128, C/128, 128] (float32)."""
    R, C = x.shape
    r, c = -(-R // TILE), -(-C // TILE)
    xf = torch.zeros(r * TILE, c * TILE, dtype=torch.float32, device=x.device)
    xf[:R, :C] = x.float()
    return xf.view(r, TILE, c, TILE), r, c


def quantize_blockwise_reference(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [R, C] -> (int8 [R, C], float32 scale [ceil(R/128), ceil(C/128)])."""
    assert x.ndim == 2, x.shape
    R, C = x.shape
    t, r, c = _tiles(x)
    amax = t.abs().amax(dim=(1, 3)).clamp_min(1e-8)  # [r, c]
    inv = 128.0 / amax  # float32 division, as the kernel's (approximate) 128/amax
    q = torch.round(t * inv[:, None, :, None]).clamp_(-128, 127)  # torch.round: half to even
    q = q.view(r * TILE, c * TILE)[:R, :C].to(torch.int8)
    return q.contiguous(), (amax / 128.0).contiguous()


def int8_gemm_reference(
    x_q: torch.Tensor, x_scale: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor
) -> torch.Tensor:
    """Block-scaled int8 GEMM: x_q [M, K] int8, w_q [N, K] int8 -> float32 [M, N]."""
    M, K = x_q.shape
    N = w_q.shape[0]
    if K % TILE:
        raise ValueError(f"int8 GEMM needs in_features divisible by {TILE}, got {K}")
    out = torch.zeros(M, N, dtype=torch.float32, device=x_q.device)
    rows = torch.arange(M, device=x_q.device) // TILE
    cols = torch.arange(N, device=x_q.device) // TILE
    for t in range(K // TILE):
        ks = slice(t * TILE, (t + 1) * TILE)
        # Products of int8 values summed over 128 terms stay below 2^24, so float32 is exact.
        dot = x_q[:, ks].float() @ w_q[:, ks].float().T
        out += dot * (x_scale[rows, t][:, None] * w_scale[cols, t][None, :])
    return out


def int8_linear_reference(
    x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """Int8Linear.forward: quantize activations by the same tile rule, GEMM, cast, + bias."""
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    x_q, x_s = quantize_blockwise_reference(x2)
    y = int8_gemm_reference(x_q, x_s, w_q, w_scale).to(x.dtype)
    if bias is not None:
        y = y + bias.to(x.dtype)
    return y.reshape(*shape[:-1], w_q.shape[0])


def quantize_weight(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize a linear weight [out, in] to the published layout (int8_weight, scale)."""
    if w.is_cuda:
        try:
            from kernels import int8_triton
        except ImportError:
            int8_triton = None
        if int8_triton is not None and int8_triton.available():
            return int8_triton.quantize_blockwise(w)
    return quantize_blockwise_reference(w)


def int8_linear(
    x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """W8A8 linear; the Triton kernels on CUDA, the reference elsewhere."""
    if x.is_cuda:
        try:
            from kernels import int8_triton
        except ImportError:
            int8_triton = None
        if int8_triton is not None and int8_triton.available():
            return int8_triton.int8_linear(x, w_q, w_scale, bias)
    return int8_linear_reference(x, w_q, w_scale, bias)
