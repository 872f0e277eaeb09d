"""GPU tests: each Triton kernel against its plain-torch reference on fresh random inputs.

Skipped where there is no CUDA GPU.  Shapes include the Wan 1.3B (12 heads, C = 1536) and 14B
(40 heads, C = 5120) sizes at 480p (L = 32,760 tokens, not a multiple of the 128/64 blocks)
and small awkward lengths.  Tolerances (relative L2 error unless said otherwise):

* SLA, bf16 / fp16 in and out: 1e-2 (bf16 P·V operands and the bf16 output rounding);
* SageSLA (int8 Q·K^T): 3e-2;
* int8 quantization: bit-exact int8 values and scales; int8 GEMM / linear: within 1 bf16 ulp of
  the pre-bias output plus the bias add's rounding (FMA vs multiply-then-add accumulation);
* norms, bf16 out: |diff| <= 1.6e-2 (|ref| + 1) (one bf16 ulp plus float32 reduction order);
* VAE bias / residual adds: bit-exact (the same roundings as torch's adds).
"""

from __future__ import annotations

import pytest
import torch

from kernels import int8 as i8
from kernels import norms, sla

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

DEV = "cuda"


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item()


def _qkv(B, L, H, D, dtype, seed):
    g = torch.Generator(device=DEV).manual_seed(seed)
    q = (torch.randn(B, L, H, D, device=DEV, generator=g) * 1.5).to(dtype)
    k = (torch.randn(B, L, H, D, device=DEV, generator=g) + 0.3).to(dtype)  # a mean for smooth-k
    v = torch.randn(B, L, H, D, device=DEV, generator=g).to(dtype)
    w = torch.randn(D, D, device=DEV, generator=g) / D**0.5
    b = torch.randn(D, device=DEV, generator=g) * 0.1
    return q, k, v, w.to(dtype), b.to(dtype)


SLA_CASES = [
    # B, L, H, D, topk, dtype
    (1, 1000, 2, 128, 0.25, torch.bfloat16),
    (2, 4097, 3, 64, 0.1, torch.bfloat16),
    (1, 777, 2, 128, 0.29, torch.float16),
    (1, 32760, 12, 128, 0.1, torch.bfloat16),  # Wan 1.3B, 480p
    (1, 32760, 40, 128, 0.1, torch.bfloat16),  # Wan 14B, 480p
    (1, 32760, 12, 128, 0.15, torch.bfloat16),
]


HOPPER = torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 9
# (kind, kernel, SageSLA P·V precision): the pointer kernel runs on any sm80+ GPU, the TMA one
# on Hopper (the default there).
SLA_KERNELS = [("sla", "ptr", None), ("sagesla", "ptr", None), ("sla", "tma", None),
               ("sagesla", "tma", "bf16"), ("sagesla", "tma", "fp8")]
# relative L2 tolerance: bf16 P·V 1e-2; int8 Q·K^T 3e-2; + e4m3 P and V (3 mantissa bits) 6e-2
SLA_TOL = {"sla": 1e-2, "sagesla": 3e-2, "sagesla-fp8": 6e-2}


@pytest.mark.parametrize("B,L,H,D,topk,dtype", SLA_CASES)
@pytest.mark.parametrize("kind,impl,pv", SLA_KERNELS)
def test_sla_matches_reference(B, L, H, D, topk, dtype, kind, impl, pv):
    if impl == "tma" and not (HOPPER and sla.TensorDescriptor is not None):
        pytest.skip("the TMA kernel needs a Hopper GPU and Triton's host tensor descriptors")
    q, k, v, w, b = _qkv(B, L, H, D, dtype, seed=L + H + int(topk * 100))
    # SageSLA's blocks follow the reference: 64 query x 128 key rows on an H100/H200, else 128 x 64
    blkq, blkk = sla.sage_blocks(q.device) if kind == "sagesla" else (sla.BLKQ, sla.BLKK)
    out, idx = sla._sla_forward_triton(q, k, v, w, b, topk, int8_qk=kind == "sagesla", return_indices=True,
                                       impl=impl, pv=pv)
    ref, parts = sla.sla_reference(q, k, v, w, b, topk, blkq=blkq, blkk=blkk, return_parts=True)
    # block map identical (same inputs -> same selected blocks)
    bm = torch.zeros_like(parts["block_map"])
    bm.scatter_(-1, idx.long(), True)
    assert torch.equal(bm, parts["block_map"])
    assert idx.shape[-1] == sla.selected_blocks(topk, -(-L // blkk))
    assert out.dtype == dtype and out.shape == q.shape
    assert torch.isfinite(out).all()
    tol = SLA_TOL[kind + ("-fp8" if pv == "fp8" else "")]
    err = _rel(out, ref)
    print(f"{kind} {impl} pv={pv} {B}x{L}x{H}x{D} topk={topk} {dtype}: rel L2 {err:.2e} (tol {tol})")
    assert err < tol


@pytest.mark.parametrize("B,L,H,D,topk,dtype", SLA_CASES)
def test_block_map_paths_identical(B, L, H, D, topk, dtype):
    """Every block-map path against the reference: "reference" and "exact" must match bit for bit;
    "fast" (Triton pooling in its own order) differs only by fp32 summation order."""
    q, k, _, _, _ = _qkv(B, L, H, D, dtype, seed=3 * L + H)
    ref = sla.sla_block_map(q.transpose(1, 2), k.transpose(1, 2), topk)
    for mode in ("reference", "exact", "fast"):
        idx, _ = sla.sla_block_indices(q, k, topk, mode=mode)
        bm = torch.zeros_like(ref)
        bm.scatter_(-1, idx.long(), True)
        bad_rows = (bm != ref).any(-1).sum().item()
        print(f"block map {mode} {B}x{L}x{H}x{D} topk={topk}: {bad_rows} query-block rows differ")
        if mode != "fast":
            assert bad_rows == 0
        else:  # opt-in: near-ties may flip (1 of 3,072 rows seen at 1.3B shapes)
            assert bad_rows <= max(1, ref.shape[0] * ref.shape[1] * ref.shape[2] // 1000)


@pytest.mark.parametrize("kind", ["bf16", "few_values", "zeros"])
@pytest.mark.parametrize("K,n", [(512, 51), (512, 76), (100, 28), (64, 1), (1024, 102), (7, 7)])
def test_topk_kernel_picks_torch_topk_set(kind, K, n):
    """The block map's Triton top-k selects exactly torch.topk's set on CUDA, ties included
    (bf16 scores tie often; "few_values" makes the N-th value a tie almost always; "zeros" mixes
    +0.0 and -0.0, which torch's radix select orders)."""
    g = torch.Generator(device=DEV).manual_seed(K * 7 + n)
    if kind == "bf16":
        s = torch.randn(3000, K, device=DEV, generator=g).to(torch.bfloat16)
    elif kind == "few_values":
        s = torch.randint(-3, 4, (3000, K), device=DEV, generator=g).to(torch.bfloat16)
    else:
        s = torch.randint(-1, 2, (3000, K), device=DEV, generator=g).float() * 0.0  # +0.0 and -0.0
        s[:, ::5] = -0.0
        s[:, 1::7] = 1.0
    ref = s.float().topk(n, dim=-1).indices.to(torch.int32).sort(dim=-1).values
    got = sla.topk_indices_triton(s, n)
    assert got.dtype == torch.int32 and got.shape == ref.shape
    assert torch.equal(got, ref), (got != ref).any(-1).sum().item()


@pytest.mark.parametrize("L", [32760, 32768, 2000, 4096 + 77, 64, 130, 1])
@pytest.mark.parametrize("layout", ["contiguous", "fused_qkv"])
def test_exact_pooling_bit_identical(L, layout):
    """The Triton pooling of the "exact" block map equals the reference's torch pooling bit for bit
    (pooled q, smooth-k pooled k, k mean and the bf16 scores), on fresh random inputs."""
    H, D = (12, 128) if L >= 32760 else (3, 128)
    for trial in range(3):
        g = torch.Generator(device=DEV).manual_seed(1000 * trial + L)
        if layout == "fused_qkv":  # q, k as slices of one [B, L, 3, H, D] projection, as in the DiT
            qkv = torch.randn(1, L, 3, H, D, device=DEV, generator=g).mul_(2.0).to(torch.bfloat16)
            q, k = qkv[:, :, 0], qkv[:, :, 1]
        else:
            q, k = (torch.randn(1, L, H, D, device=DEV, generator=g).mul_(2.0).add_(0.3).to(torch.bfloat16)
                    for _ in range(2))
        qh, kh = q.transpose(1, 2), k.transpose(1, 2)
        k_mean_ref = kh.float().mean(dim=2, keepdim=True)
        pq_ref = sla._pool_blocks(qh, sla.BLKQ).to(q.dtype)
        pk_ref = sla._pool_blocks(kh.float() - k_mean_ref, sla.BLKK).to(q.dtype)
        scores_ref = pq_ref @ pk_ref.transpose(-1, -2)
        scores, k_mean, pq, pk = sla.block_scores_exact_triton(q, k)
        assert torch.equal(k_mean, k_mean_ref)
        assert torch.equal(pq.view(torch.int16), pq_ref.view(torch.int16))
        assert torch.equal(pk.view(torch.int16), pk_ref.view(torch.int16))
        assert torch.equal(scores.view(torch.int16), scores_ref.view(torch.int16))


@pytest.mark.parametrize("blocks", [(64, 128), (128, 64)])
def test_sagesla_block_shapes(blocks, monkeypatch):
    """Either SageSLA block shape runs on both kernels and matches the reference with those blocks;
    ``SAGE_BLOCKS = "arch"`` picks 64 x 128 exactly on compute capability 9.0 (the reference's rule)."""
    monkeypatch.setattr(sla, "SAGE_BLOCKS", blocks)
    assert sla.sage_blocks(DEV) == blocks
    q, k, v, w, b = _qkv(1, 4173, 3, 128, torch.bfloat16, seed=11)
    ref = sla.sla_reference(q, k, v, w, b, 0.2, blkq=blocks[0], blkk=blocks[1])
    for impl in (["ptr", "tma"] if HOPPER and sla.TensorDescriptor is not None else ["ptr"]):
        out = sla._sla_forward_triton(q, k, v, w, b, 0.2, int8_qk=True, impl=impl)
        assert _rel(out, ref) < SLA_TOL["sagesla"], impl
    monkeypatch.setattr(sla, "SAGE_BLOCKS", "arch")
    want = (64, 128) if torch.cuda.get_device_capability() == (9, 0) else (128, 64)
    assert sla.sage_blocks(DEV) == want
    assert _rel(sla.sagesla_attention(q, k, v, w, b, 0.2),
                sla.sla_reference(q, k, v, w, b, 0.2, blkq=want[0], blkk=want[1])) < SLA_TOL["sagesla"]


def test_sla_public_launchers_use_fast_path_and_per_call_topk():
    q, k, v, w, b = _qkv(1, 2000, 2, 128, torch.bfloat16, seed=7)
    for topk in (0.1, 0.5):
        ref = sla.sla_reference(q, k, v, w, b, topk)
        assert _rel(sla.sla_attention(q, k, v, w, b, topk), ref) < 1e-2
        blkq, blkk = sla.sage_blocks(q.device)
        ref_sage = sla.sla_reference(q, k, v, w, b, topk, blkq=blkq, blkk=blkk)
        assert _rel(sla.sagesla_attention(q, k, v, w, b, topk), ref_sage) < 3e-2
    # non-contiguous inputs (as views from a fused qkv projection)
    qkv = torch.randn(1, 1500, 3, 2, 128, device=DEV, dtype=torch.bfloat16)
    q2, k2, v2 = qkv.unbind(2)
    ref = sla.sla_reference(q2, k2, v2, w, b, 0.2)
    assert _rel(sla.sla_attention(q2, k2, v2, w, b, 0.2), ref) < 1e-2
    assert sla.tma_usable(q2, k2, v2) == (HOPPER and sla.TensorDescriptor is not None)  # fused-projection slices take the TMA kernel


def test_int8_quant_round_half_even_and_saturate():
    x = torch.zeros(128, 256, device=DEV, dtype=torch.bfloat16)
    x[0, 0] = 128.0  # amax of tile 0 -> 128/amax = 1
    x[0, 1:7] = torch.tensor([2.5, -3.5, 0.5, -0.5, 1.5, -128.0], device=DEV, dtype=torch.bfloat16)
    x[5, 200] = -3.0  # tile 1: amax 3 -> -3 * 128/3 = -128
    x[6, 201] = 3.0
    xq, xs = i8.quantize_blockwise_triton(x)
    rq, rs = i8.quantize_blockwise_reference(x)
    assert torch.equal(xq, rq) and torch.equal(xs, rs)
    assert xq[0, :7].tolist() == [127, 2, -4, 0, 0, 2, -128]
    assert xq[5, 200].item() == -128 and xq[6, 201].item() == 127
    assert xs[0, 0].item() == 1.0  # 128 / 128


@pytest.mark.parametrize("R,C", [(300, 256), (32760, 1536), (1536, 8960), (8960, 1536), (5120, 13824)])
def test_int8_quant_bit_exact(R, C):
    g = torch.Generator(device=DEV).manual_seed(R + C)
    x = (torch.randn(R, C, device=DEV, generator=g) * torch.rand(R, 1, device=DEV, generator=g) * 4).to(torch.bfloat16)
    xq, xs = i8.quantize_blockwise_triton(x)
    rq, rs = i8.quantize_blockwise_reference(x)
    assert torch.equal(xs, rs)
    assert torch.equal(xq, rq)


@pytest.mark.parametrize("M,K,N", [
    (300, 256, 384), (1000, 1536, 1536), (300, 192, 576), (1000, 576, 192),  # tiny-w192d6: partial K tile
    (32760, 1536, 8960), (32760, 8960, 1536),  # Wan 1.3B FFN
    (32760, 5120, 13824), (32760, 13824, 5120),  # Wan 14B FFN
])
@pytest.mark.parametrize("with_bias", [True, False])
def test_int8_linear_matches_reference(M, K, N, with_bias):
    if with_bias is False and M > 1000:
        pytest.skip("bias-less path covered on the small shapes")
    g = torch.Generator(device=DEV).manual_seed(M + K + N)
    x = torch.randn(1, M, K, device=DEV, generator=g).to(torch.bfloat16)
    w = (torch.randn(N, K, device=DEV, generator=g) / K**0.5).to(torch.bfloat16)
    bias = (torch.randn(N, device=DEV, generator=g) * 0.1).to(torch.bfloat16) if with_bias else None
    w_q, w_s = i8.quantize_weight(w)
    rq, rs = i8.quantize_blockwise_reference(w)
    assert torch.equal(w_q, rq) and torch.equal(w_s, rs)
    y = i8.int8_linear(x, w_q, w_s, bias)
    ref = i8.int8_linear_reference(x, w_q, w_s, bias)
    assert y.dtype == torch.bfloat16 and y.shape == (1, M, N)
    yf, rf = y.float(), ref.float()
    # 1 bf16 ulp of the pre-bias GEMM output (the kernel's FMA accumulation rounds differently
    # from the reference's multiply-then-add), plus the rounding of the bias add.
    pre = rf - (bias.float() if bias is not None else 0.0)
    bad = (yf - rf).abs() > 2**-7 * pre.abs() + 2**-8 * rf.abs() + 1e-3 * rf.abs().max()
    assert bad.sum().item() == 0
    # and it is a good approximation of the bf16 linear
    dense = torch.nn.functional.linear(x, w, bias)
    assert _rel(y, dense) < 2e-2


@pytest.mark.parametrize("M,K,N", [(300, 256, 384), (4100, 1536, 8960), (700, 576, 192)])
def test_int8_gemm_launch_variants_bit_equal(M, K, N):
    # Every tile shape sums the same per-K-tile products in the same order: identical outputs,
    # whether the weight scale is a scalar (BLOCK_N 128) or a per-column vector (256).
    g = torch.Generator(device=DEV).manual_seed(7)
    x = torch.randn(M, K, device=DEV, generator=g).to(torch.bfloat16)
    w = (torch.randn(N, K, device=DEV, generator=g) / K**0.5).to(torch.bfloat16)
    b = torch.randn(N, device=DEV, generator=g).to(torch.bfloat16)
    x_q, x_s = i8.quantize_blockwise_triton(x)
    w_q, w_s = i8.quantize_weight(w)
    base = i8.int8_gemm_triton(x_q, x_s, w_q, w_s, b, torch.bfloat16)
    for bm, bn, nw, ns in [(128, 128, 8, 4), (64, 128, 4, 3), (128, 256, 8, 3), (64, 256, 4, 2)]:
        y = i8.int8_gemm_triton(x_q, x_s, w_q, w_s, b, torch.bfloat16, block_m=bm, block_n=bn,
                                num_warps=nw, num_stages=ns)
        assert torch.equal(y, base), (bm, bn, nw, ns)


@pytest.mark.parametrize("B,L,C", [(1, 32760, 1536), (2, 1000, 5120), (1, 37, 96), (3, 129, 1536)])
@pytest.mark.parametrize("mod", ["both", "none", "batch1"])
@pytest.mark.parametrize("config", [None, (True, 4, 8), (True, 1, 4), (False, 8, 16)])
def test_layer_norm_modulate(B, L, C, mod, config):
    g = torch.Generator(device=DEV).manual_seed(B * L + C)
    x = (torch.randn(B, L, C, device=DEV, generator=g) * 3 + 1).to(torch.bfloat16)
    nb = 1 if mod == "batch1" else B
    shift = torch.randn(nb, 1, C, device=DEV, generator=g) if mod != "none" else None
    scale = torch.randn(nb, 1, C, device=DEV, generator=g) * 0.5 if mod != "none" else None
    y = norms.layer_norm_modulate(x, shift, scale, 1e-6, config=config)
    ref = norms.layer_norm_modulate_reference(x, shift, scale, 1e-6)
    assert y.dtype == x.dtype
    assert ((y.float() - ref.float()).abs() <= 1.6e-2 * (ref.float().abs() + 1)).all()


@pytest.mark.parametrize("shape", [(1, 32760, 1536), (1, 32760, 5120), (2, 77, 96)])
def test_rms_norm(shape):
    g = torch.Generator(device=DEV).manual_seed(sum(shape))
    x = (torch.randn(*shape, device=DEV, generator=g) * 2).to(torch.bfloat16)
    w = (torch.rand(shape[-1], device=DEV, generator=g) + 0.5).to(torch.bfloat16)
    y = norms.rms_norm(x, w, 1e-6)
    ref = norms.rms_norm_reference(x, w, 1e-6, fast=True)
    assert ((y.float() - ref.float()).abs() <= 1.6e-2 * (ref.float().abs() + 1)).all()


def test_registry_on_gpu():
    from kernels.registry import available_backends

    av = available_backends()
    assert av["sla"][0] and av["sagesla"][0] and av["int8"][0], av
    assert ("TMA kernel" in av["sla"][1]) == (HOPPER and sla.TensorDescriptor is not None), av["sla"]


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-3), (torch.bfloat16, 1e-2)])
def test_ffn_gelu_epilogue_matches_ffn(dtype, tol):
    """The FFN with GELU-tanh in the GEMM epilogue computes the plain FFN (tanh GELU on CUDA)."""
    from torch import nn

    from engine.models.wan_dit import ffn_gelu_epilogue

    torch.manual_seed(11)
    ffn = nn.Sequential(nn.Linear(96, 320), nn.GELU(approximate="tanh"), nn.Linear(320, 96)).to(DEV, dtype)
    h = torch.randn(2, 333, 96, device=DEV, dtype=dtype)
    with torch.no_grad():
        ref = ffn.double()(h.double()) if dtype == torch.float32 else ffn.float()(h.float())
        ffn.to(dtype)
        out = ffn_gelu_epilogue(ffn, h)
    assert out.dtype == dtype and out.shape == h.shape
    assert _rel(out, ref) < tol


def test_ffn_gelu_epilogue_steps_aside_under_autocast():
    """Under bf16 autocast with fp32 weights (the training phases' --amp) the epilogue GEMM,
    which autocast does not cast, must not run: the FFN runs as plain autocast layers."""
    from torch import nn

    from engine.models.wan_dit import ffn_gelu_epilogue

    torch.manual_seed(12)
    ffn = nn.Sequential(nn.Linear(96, 320), nn.GELU(approximate="tanh"), nn.Linear(320, 96)).to(DEV)
    h = torch.randn(2, 65, 96, device=DEV)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        ref = ffn(h.to(torch.bfloat16))
        out = ffn_gelu_epilogue(ffn, h.to(torch.bfloat16))  # raised a dtype mismatch before
    assert out.dtype == ref.dtype == torch.bfloat16
    assert torch.equal(out, ref)


def test_forward_only_kernels_step_aside_for_tensors_that_need_gradients():
    """Training runs through the same modules: where autograd needs a tensor's gradient the
    Triton paths (which have no backward) must hand over to the differentiable references."""
    import engine.models.wan_vae as wan_vae
    from kernels import vae

    x = torch.randn(4, 128, device="cuda")
    w = x.clone().requires_grad_(True)
    for mod in (norms, sla, i8, vae, wan_vae):
        assert mod.triton_usable(x) is True
        assert mod.triton_usable(w) is False
        with torch.no_grad():
            assert mod.triton_usable(w) is True


VAE_SHAPES = [(1, 96, 4, 60, 104), (1, 384, 2, 30, 52), (2, 24, 3, 7, 9), (1, 3, 1, 16, 16)]


@pytest.mark.parametrize("shape", VAE_SHAPES)
@pytest.mark.parametrize("channels_last", [True, False])
def test_channel_bias_add_bit_equal(shape, channels_last):
    from kernels import vae

    g = torch.Generator(device=DEV).manual_seed(sum(shape))
    C = shape[1]
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    y, r = (torch.randn(shape, device=DEV, generator=g).to(torch.bfloat16).contiguous(memory_format=fmt)
            for _ in range(2))
    b, rb = (torch.randn(C, device=DEV, generator=g).to(torch.bfloat16) for _ in range(2))
    for args in [(b, None, None), (b, r, None), (b, r, rb), (None, r, None)]:
        ref = vae.channel_bias_add_reference(y, *args)
        out = vae.channel_bias_add(y.clone(), *args)  # in place
        assert torch.equal(out, ref), [a is not None for a in args]
        assert out.is_contiguous(memory_format=fmt)
        into = torch.empty_like(y)
        assert vae.channel_bias_add(y, *args, out=into) is into and torch.equal(into, ref)


@pytest.mark.parametrize("channels_last", [True, False])
def test_channel_rms_silu_bias_equals_separate_add(channels_last):
    g = torch.Generator(device=DEV).manual_seed(3)
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    x = torch.randn(1, 96, 2, 30, 52, device=DEV, generator=g).to(torch.bfloat16).contiguous(memory_format=fmt)
    gamma = torch.rand(96, 1, 1, 1, device=DEV, generator=g).to(torch.bfloat16) + 0.5
    b = torch.randn(96, device=DEV, generator=g).to(torch.bfloat16)
    sep = norms.channel_rms_silu(x + b.view(1, -1, 1, 1, 1), gamma)
    assert torch.equal(norms.channel_rms_silu(x, gamma, bias=b), sep)
