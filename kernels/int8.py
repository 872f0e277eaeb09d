"""W8A8 int8 linear with 128x128 block scales (TurboDiffusion ``Int8Linear`` layout).

Quantization rule (FORMATS.md section 3, the reference's quant.hpp): per 128x128 tile of a
row-major [rows, cols] matrix, ``amax = max(1e-8, max|v|)``, ``q = round_half_even(v * (128 /
amax))`` saturated to [-128, 127], stored ``scale = amax / 128``.  The GEMM sums exact int32
dot products per 128-wide K tile, scales each by ``x_scale[m//128, t] * w_scale[n//128, t]``
and accumulates in float32; the result is cast to the activation dtype, then ``+ bias``.

This file holds, in order: the plain-torch references, the Triton kernels (defined only where
``import triton`` works; nothing compiles at import) and the public launchers.

Fast path (CUDA + Triton): ``_quant_tile_kernel`` (one program per 128x128 tile, the exact rule:
IEEE ``128 / amax``, round half to even, saturate) and ``_int8_gemm_kernel`` (BLOCK_M = 128 or 64
rows, within one activation scale row; BLOCK_N a multiple of 128; BLOCK_K = 128 = one scale column:
per K tile an int8 x int8 -> int32 dot, converted to float32 and multiplied by the product of the
two scales, accumulated in float32; the cast to the output dtype and the bias add in the epilogue).
A K that is not a multiple of 128 ends in a partial tile, read with a mask.
"""

from __future__ import annotations

import torch

from kernels._triton import HAS_TRITON, libdevice, tl, triton

HAS_TRITON = HAS_TRITON and libdevice is not None  # the quantization's rint

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
    """Block-scaled int8 GEMM: x_q [M, K] int8, w_q [N, K] int8 -> float32 [M, N].  A K that is not a
    multiple of 128 ends in a partial tile (the quantization's zero padding adds nothing to it)."""
    M, K = x_q.shape
    N = w_q.shape[0]
    out = torch.zeros(M, N, dtype=torch.float32, device=x_q.device)
    rows = torch.arange(M, device=x_q.device) // TILE
    cols = torch.arange(N, device=x_q.device) // TILE
    for t in range(-(-K // TILE)):
        ks = slice(t * TILE, min(K, (t + 1) * TILE))
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



# ----------------------------------------------------------------------------------------
# Triton kernels (defined only where triton imports; compiled on first launch).
# ----------------------------------------------------------------------------------------

if HAS_TRITON:

    @triton.jit
    def _quant_tile_kernel(X, XQ, XS, R, C, stride_r, NC, TILE_: tl.constexpr):
        """One 128x128 tile of a row-major [R, C] matrix -> int8 tile and its scale amax/128."""
        pid_r = tl.program_id(0)
        pid_c = tl.program_id(1)
        rows = pid_r * TILE_ + tl.arange(0, TILE_)
        cols = pid_c * TILE_ + tl.arange(0, TILE_)
        mask = (rows < R)[:, None] & (cols < C)[None, :]
        off = rows.to(tl.int64)[:, None] * stride_r + cols[None, :]
        x = tl.load(X + off, mask=mask, other=0.0).to(tl.float32)
        amax = tl.maximum(tl.max(tl.max(tl.abs(x), axis=1), axis=0), 1e-8)
        inv = tl.math.div_rn(128.0, amax)  # IEEE division, as the reference's float32 128/amax
        # rint = round half to even.  (An add/subtract of 1.5 * 2^23 would be contracted with
        # the multiply into an FMA by the compiler, skipping the product's rounding.)
        y = libdevice.rint(x * inv)
        y = tl.minimum(tl.maximum(y, -128.0), 127.0)
        tl.store(XQ + rows.to(tl.int64)[:, None] * C + cols[None, :], y.to(tl.int8), mask=mask)
        tl.store(XS + pid_r * NC + pid_c, amax / 128.0)

    @triton.jit
    def _load_ab(a_ptr, b_ptr, mask_m, mask_n, offs_k, k_left, EVEN_K: tl.constexpr):
        """One K tile of A and B (columns at or past ``k_left`` read as 0 unless EVEN_K)."""
        if EVEN_K:
            a = tl.load(a_ptr, mask=mask_m[:, None], other=0)
            b = tl.load(b_ptr, mask=mask_n[:, None], other=0)
        else:
            kmask = (offs_k < k_left)[None, :]
            a = tl.load(a_ptr, mask=mask_m[:, None] & kmask, other=0)
            b = tl.load(b_ptr, mask=mask_n[:, None] & kmask, other=0)
        return a, b

    @triton.jit
    def _k_scale(as_ptr, bs_ptr, t, mask_n, BLOCK_N: tl.constexpr):
        """x_s * w_s of K step t: a scalar when the tile is one 128-column weight block (a per-column
        vector of scales made the 1.3B up-projection 25% slower on an H100), else a [1, BLOCK_N] row."""
        if BLOCK_N == 128:
            return tl.load(as_ptr + t) * tl.load(bs_ptr + t)
        else:
            return (tl.load(as_ptr + t) * tl.load(bs_ptr + t, mask=mask_n, other=0.0))[None, :]

    @triton.jit
    def _int8_gemm_kernel(
        A, B, Cout, AS, BS, BIAS,
        M, N, K, NKT,
        stride_am, stride_bn, stride_cm,
        HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr, EVEN_K: tl.constexpr = True,
    ):
        """Cout[M, N] = cast(sum_t int32(A_t @ B_t^T) * (AS[m/128, t] * BS[n/128, t])) + bias.

        A [M, K] int8, B [N, K] int8 (the linear weight), AS [ceil(M/128), NKT],
        BS [ceil(N/128), NKT] float32.  BLOCK_K == 128, BLOCK_M in (64, 128), BLOCK_N % 128 == 0.
        Without EVEN_K the last K tile is partial: its columns past K load as 0."""
        pid = tl.program_id(0)
        num_m = tl.cdiv(M, BLOCK_M)
        num_n = tl.cdiv(N, BLOCK_N)
        group = GROUP_M * num_n
        first_m = (pid // group) * GROUP_M
        size_m = tl.minimum(num_m - first_m, GROUP_M)
        pid_m = first_m + ((pid % group) % size_m)
        pid_n = (pid % group) // size_m

        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_k = tl.arange(0, BLOCK_K)
        mask_m = offs_m < M
        mask_n = offs_n < N
        a_ptr = A + offs_m.to(tl.int64)[:, None] * stride_am + offs_k[None, :]
        b_ptr = B + offs_n.to(tl.int64)[:, None] * stride_bn + offs_k[None, :]
        as_ptr = AS + (pid_m * BLOCK_M // 128) * NKT
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        if BLOCK_N == 128:
            bs_ptr = BS + pid_n * NKT  # one weight scale per tile and K step
        else:
            bs_ptr = BS + (offs_n // 128) * NKT
        for t in range(0, NKT):
            a, b = _load_ab(a_ptr, b_ptr, mask_m, mask_n, offs_k, K - t * BLOCK_K, EVEN_K)
            d = tl.dot(a, tl.trans(b), out_dtype=tl.int32)
            acc += d.to(tl.float32) * _k_scale(as_ptr, bs_ptr, t, mask_n, BLOCK_N)
            a_ptr += BLOCK_K
            b_ptr += BLOCK_K
        y = acc.to(Cout.dtype.element_ty)
        if HAS_BIAS:
            bias = tl.load(BIAS + offs_n, mask=mask_n, other=0.0)
            y = (y.to(tl.float32) + bias.to(tl.float32)).to(Cout.dtype.element_ty)
        c_ptr = Cout + offs_m.to(tl.int64)[:, None] * stride_cm + offs_n[None, :]
        tl.store(c_ptr, y, mask=mask_m[:, None] & mask_n[None, :])


# ----------------------------------------------------------------------------------------
# Launchers.
# ----------------------------------------------------------------------------------------


def triton_usable(t: torch.Tensor) -> bool:
    """True when the Triton path can run on ``t``'s device (CUDA, triton importable, sm80+)."""
    # The kernels are forward-only: where autograd needs this tensor's gradient (training),
    # the reference runs.
    return HAS_TRITON and t.is_cuda and not (t.requires_grad and torch.is_grad_enabled()) and torch.cuda.get_device_capability(t.device)[0] >= 8


def quantize_blockwise_triton(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [R, C] fp16/bf16 -> (int8 [R, C], float32 scale [ceil(R/128), ceil(C/128)]), one pass."""
    assert x.ndim == 2, x.shape
    if x.stride(-1) != 1:
        x = x.contiguous()
    R, C = x.shape
    nr, nc = triton.cdiv(R, TILE), triton.cdiv(C, TILE)
    xq = torch.empty(R, C, device=x.device, dtype=torch.int8)
    xs = torch.empty(nr, nc, device=x.device, dtype=torch.float32)
    _quant_tile_kernel[(nr, nc)](x, xq, xs, R, C, x.stride(0), nc, TILE_=TILE, num_warps=8)
    return xq, xs


# Launch settings of the GEMM: (BLOCK_M, BLOCK_N, warps, stages).  H100 sweep in BENCHMARKS.md
# ("W8A8 int8 GEMM: scalar scales").
GEMM_CONFIG = (128, 128, 8, 4)


def int8_gemm_triton(
    x_q: torch.Tensor, x_scale: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor,
    bias: torch.Tensor | None, out_dtype: torch.dtype,
    block_m: int | None = None, block_n: int | None = None, num_warps: int | None = None,
    num_stages: int | None = None, group_m: int = 8,
) -> torch.Tensor:
    """Block-scaled int8 GEMM with the bias in the epilogue -> [M, N] in ``out_dtype``; launch
    settings default to :data:`GEMM_CONFIG`."""
    cfg = GEMM_CONFIG
    block_m, block_n = block_m or cfg[0], block_n or cfg[1]
    num_warps, num_stages = num_warps or cfg[2], num_stages or cfg[3]
    M, K = x_q.shape
    N = w_q.shape[0]
    assert block_m in (64, 128) and block_n % TILE == 0, (block_m, block_n)
    x_q, w_q = x_q.contiguous(), w_q.contiguous()
    x_scale, w_scale = x_scale.contiguous(), w_scale.contiguous()
    out = torch.empty(M, N, device=x_q.device, dtype=out_dtype)
    grid = (triton.cdiv(M, block_m) * triton.cdiv(N, block_n),)
    _int8_gemm_kernel[grid](
        x_q, w_q, out, x_scale, w_scale, bias if bias is not None else out,
        M, N, K, triton.cdiv(K, TILE), x_q.stride(0), w_q.stride(0), out.stride(0),
        HAS_BIAS=bias is not None, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=TILE, GROUP_M=group_m,
        EVEN_K=K % TILE == 0,
        num_warps=num_warps, num_stages=num_stages,
    )
    return out


def quantize_weight(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize a linear weight [out, in] to the published layout (int8_weight, scale)."""
    if triton_usable(w) and w.dtype in (torch.float16, torch.bfloat16):
        return quantize_blockwise_triton(w)
    return quantize_blockwise_reference(w)


def int8_linear(
    x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """W8A8 linear; the Triton kernels on CUDA, the reference elsewhere."""
    if triton_usable(x) and x.dtype in (torch.float16, torch.bfloat16):
        shape = x.shape
        x_q, x_s = quantize_blockwise_triton(x.reshape(-1, shape[-1]))
        b = None if bias is None else bias.to(x.dtype).contiguous()
        y = int8_gemm_triton(x_q, x_s, w_q, w_scale, b, x.dtype)
        return y.reshape(*shape[:-1], w_q.shape[0])
    return int8_linear_reference(x, w_q, w_scale, bias)
