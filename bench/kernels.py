"""Benchmark the Triton kernels against torch baselines on the Wan shapes (480p, L = 32,760).

    python3 bench/kernels.py [--quick] [--variants]

Times are medians of triton.testing.do_bench (CUDA events), on random data.  Prints one table
per kernel family for the GPU it runs on; ``--variants`` also times launch-configuration
variants of the SLA forward and the int8 GEMM.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kernels import int8 as i8  # noqa: E402
from kernels import norms, sla  # noqa: E402

L = 32760
ROWS: list[tuple] = []


def bench(fn) -> float:
    import triton.testing

    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def row(family, shape, name, ms, extra=""):
    ROWS.append((family, shape, name, ms, extra))
    print(f"{family:10s} {shape:26s} {name:36s} {ms:9.3f} ms  {extra}", flush=True)


def copy_bandwidth() -> float:
    x = torch.randn(256 * 2**20, device="cuda", dtype=torch.bfloat16)  # 512 MiB
    y = torch.empty_like(x)
    ms = bench(lambda: y.copy_(x))
    return 2 * x.numel() * 2 / ms / 1e9  # TB/s (read + write)


def bench_attention(heads_list, topk, variants):
    for H in heads_list:
        shape = f"1x{L}x{H}x128 topk{topk}"
        q, k, v = (torch.randn(1, L, H, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        w = (torch.randn(128, 128, device="cuda") / 128**0.5).to(torch.bfloat16)
        b = torch.zeros(128, device="cuda", dtype=torch.bfloat16)
        qh, kh, vh = (t.transpose(1, 2) for t in (q, k, v))
        row("attention", shape, "torch SDPA dense (bf16)", bench(lambda: F.scaled_dot_product_attention(qh, kh, vh)))
        row("attention", shape, "SLA module (sla_attention)", bench(lambda: sla.sla_attention(q, k, v, w, b, topk)))
        row("attention", shape, "SageSLA module (sagesla_attention)",
            bench(lambda: sla.sagesla_attention(q, k, v, w, b, topk)))
        for mode in ("reference", "exact", "fast"):
            row("attention", shape, f"  block map ({mode})",
                bench(lambda mode=mode: sla.sla_block_indices(q, k, topk, mode=mode)))
        row("attention", shape, "  linear state (kv kernel)", bench(lambda: sla._linear_branch_state(k, v, w)))
        row("attention", shape, "SLA module, pointer kernel (impl=ptr)",
            bench(lambda: sla._sla_forward_triton(q, k, v, w, b, topk, impl="ptr")))
        if sla.tma_usable(q, k, v):
            for pv in ("bf16", "fp8"):
                row("attention", shape, f"SageSLA module, TMA, P.V {pv}",
                    bench(lambda pv=pv: sla._sla_forward_triton(q, k, v, w, b, topk, int8_qk=True, pv=pv)))
        if sla.tma_usable(q, k, v):  # SageSLA with the other block shape than this GPU's default
            other = (128, 64) if sla.sage_blocks(q.device) == (64, 128) else (64, 128)
            row("attention", shape, f"SageSLA module, blocks {other[0]}x{other[1]}",
                bench(lambda: sla._sla_forward_triton(q, k, v, w, b, topk, int8_qk=True, blocks=other)))
        for int8_qk in (False, True):
            blocks = sla.sage_blocks(q.device) if int8_qk else (sla.BLKQ, sla.BLKK)
            prep = sla._sla_prepare(q, k, v, w, b, topk, int8_qk=int8_qk, blocks=blocks)
            tag = "sagesla" if int8_qk else "sla"
            nsel = sla.selected_blocks(topk, -(-L // blocks[1]))
            flops = 4 * H * L * nsel * blocks[1] * 128  # on the selected blocks
            if int8_qk:
                _, k_mean = sla.sla_block_indices(q, k, topk, *blocks)
                km = k_mean.reshape(H, 128).contiguous()
                row("attention", shape, f"  int8 quant q+k (blocks {blocks[0]}x{blocks[1]})",
                    bench(lambda: (sla._quantize_blocks(q, blocks[0], None), sla._quantize_blocks(k, blocks[1], km))))
                row("attention", shape, "  fp8 V^T quant", bench(lambda: sla._quantize_vt_fp8(v)))
            cfgs = [sla.FWD_CONFIG[tag]]
            if variants and not sla.tma_usable(q, k, v):
                cfgs += [c for c in [(1, 4, 3), (1, 8, 3), (2, 8, 3), (2, 4, 2), (1, 8, 2)] if c != cfgs[0]]
            for c in cfgs:
                fn = lambda c=c: sla._sla_fwd_launch(q, k, v, **prep, linear=True, int8_qk=int8_qk,  # noqa: E731
                                                     kb_per_iter=c[0], num_warps=c[1], num_stages=c[2],
                                                     blocks=blocks)
                ms = bench(fn)
                row("attention", shape, f"  {tag} ptr fwd kern {c}", ms, f"{flops / ms / 1e9:.0f} TFLOP/s eff")
            if not sla.tma_usable(q, k, v):
                continue
            pvs = ("bf16", "fp8") if int8_qk else ("bf16",)
            for pv in pvs:
                prep_t = sla._sla_prepare(q, k, v, w, b, topk, int8_qk=int8_qk, fp8_pv=pv == "fp8", blocks=blocks)
                cfgs = [sla.tma_config(int8_qk, blocks)]
                if variants:
                    cfgs += [c for c in [(w, st, tail, fold) for w in (4, 8) for st in (2, 3)
                                         for tail in (True, False) for fold in (True, False)] if c != cfgs[0]]
                for c in cfgs:
                    fn = lambda c=c, p=prep_t: sla._sla_fwd_tma_launch(  # noqa: E731
                        q, k, v, **p, linear=True, int8_qk=int8_qk, config=c, blocks=blocks)
                    try:
                        ms = bench(fn)
                    except Exception as e:  # a variant out of shared memory / registers
                        print(f"  TMA variant {tag} {pv} {c} failed: {type(e).__name__}: {str(e)[:160]}")
                        continue
                    row("attention", shape, f"  {tag} TMA pv={pv} (warps,stages,tail,fold)={c}", ms,
                        f"{flops / ms / 1e9:.0f} TFLOP/s eff")
        del q, k, v, qh, kh, vh
        torch.cuda.empty_cache()


def bench_linear(shapes, variants):
    for K, N in shapes:
        shape = f"{L}x{K}->{N}"
        x = torch.randn(L, K, device="cuda", dtype=torch.bfloat16)
        w = (torch.randn(N, K, device="cuda") / K**0.5).to(torch.bfloat16)
        b = torch.randn(N, device="cuda", dtype=torch.bfloat16)
        flop = 2 * L * K * N
        t_bf16 = bench(lambda: F.linear(x, w, b))
        row("linear", shape, "F.linear bf16 (cuBLAS)", t_bf16, f"{flop / t_bf16 / 1e9:.0f} TFLOP/s")
        w_q, w_s = i8.quantize_weight(w)
        t_all = bench(lambda: i8.int8_linear(x, w_q, w_s, b))
        row("linear", shape, "int8_linear (quant + GEMM)", t_all, f"{t_bf16 / t_all:.2f}x bf16")
        row("linear", shape, "  activation quant", bench(lambda: i8.quantize_blockwise_triton(x)))
        x_q, x_s = i8.quantize_blockwise_triton(x)
        cfgs = [i8.GEMM_CONFIG]
        if variants:
            cfgs += [c for c in [(128, 128, 8, 4), (128, 128, 8, 3), (64, 128, 4, 3), (64, 128, 4, 4),
                                 (128, 256, 8, 3), (128, 128, 4, 3)] if c != cfgs[0]]
        for bm, bn, nw, ns in cfgs:
            fn = lambda bm=bm, bn=bn, nw=nw, ns=ns: i8.int8_gemm_triton(  # noqa: E731
                x_q, x_s, w_q, w_s, b, torch.bfloat16, block_m=bm, block_n=bn, num_warps=nw, num_stages=ns)
            try:
                ms = bench(fn)
            except Exception as e:  # e.g. out of shared memory for a variant
                print(f"  variant {(bm, bn, nw, ns)} failed: {type(e).__name__}: {str(e)[:120]}")
                continue
            row("linear", shape, f"  int8 GEMM (BM,BN,warps,stages)={bm, bn, nw, ns}", ms,
                f"{flop / ms / 1e9:.0f} TOPS, {t_bf16 / ms:.2f}x bf16")
        del x, w, x_q
        torch.cuda.empty_cache()


def bench_gelu_epilogue(shapes):
    """FFN up-projection + GELU-tanh: separate (F.linear, then F.gelu) vs in the cuBLASLt epilogue."""
    for K, N in shapes:
        shape = f"{L}x{K}->{N}"
        x = torch.randn(L, K, device="cuda", dtype=torch.bfloat16)
        w = (torch.randn(N, K, device="cuda") / K**0.5).to(torch.bfloat16)
        b = torch.randn(N, device="cuda", dtype=torch.bfloat16)
        sep = lambda: F.gelu(F.linear(x, w, b), approximate="tanh")  # noqa: E731
        epi = lambda: torch._addmm_activation(b, x, w.t(), use_gelu=True)  # noqa: E731
        ref = F.gelu(F.linear(x.double(), w.double(), b.double()), approximate="tanh")
        rel = lambda y: float((y.double() - ref).norm() / ref.norm())  # noqa: E731
        t_sep, t_epi = bench(sep), bench(epi)
        row("gelu", shape, "F.linear + F.gelu(tanh)", t_sep, f"rel L2 vs fp64 {rel(sep()):.2e}")
        row("gelu", shape, "_addmm_activation(use_gelu)", t_epi,
            f"rel L2 vs fp64 {rel(epi()):.2e}; {t_sep / t_epi:.2f}x")
        del x, w, ref
        torch.cuda.empty_cache()


def bench_ffn(shapes):
    """The whole Wan FFN (up-projection, GELU-tanh, down-projection) at 480p: bf16 with the cuBLASLt
    GELU epilogue against W8A8 (quantize, int8 GEMM, torch GELU, quantize, int8 GEMM)."""
    for C, Fd in shapes:
        shape = f"{L}x{C}->{Fd}->{C}"
        x = torch.randn(L, C, device="cuda", dtype=torch.bfloat16)
        w1 = (torch.randn(Fd, C, device="cuda") / C**0.5).to(torch.bfloat16)
        w2 = (torch.randn(C, Fd, device="cuda") / Fd**0.5).to(torch.bfloat16)
        b1, b2 = (torch.randn(n, device="cuda", dtype=torch.bfloat16) * 0.1 for n in (Fd, C))
        up, down = (*i8.quantize_weight(w1), b1), (*i8.quantize_weight(w2), b2)
        t_bf16 = bench(lambda: F.linear(torch._addmm_activation(b1, x, w1.t(), use_gelu=True), w2, b2))
        row("ffn", shape, "bf16 (GELU in the cuBLASLt epilogue)", t_bf16)
        t_int8 = bench(lambda: i8.int8_linear(F.gelu(i8.int8_linear(x, *up), approximate="tanh"), *down))
        row("ffn", shape, "W8A8 (int8_linear, GELU, int8_linear)", t_int8, f"{t_bf16 / t_int8:.2f}x bf16")
        del x, w1, w2
        torch.cuda.empty_cache()


def bench_norms(widths, bw, variants=False):
    for C in widths:
        shape = f"1x{L}x{C}"
        x = torch.randn(1, L, C, device="cuda", dtype=torch.bfloat16)
        sh, sc = torch.randn(1, 1, C, device="cuda"), torch.randn(1, 1, C, device="cuda")
        wt = torch.rand(C, device="cuda", dtype=torch.bfloat16)
        nbytes = 2 * x.numel() * 2

        def pct(ms):
            return f"{nbytes / ms / 1e9:.2f} TB/s = {100 * nbytes / ms / 1e9 / bw:.0f}% of copy"

        t = bench(lambda: F.layer_norm(x, (C,), eps=1e-6))
        row("norm", shape, "torch F.layer_norm only (bf16)", t, pct(t))
        t = bench(lambda: norms.layer_norm_modulate_reference(x, sh, sc))
        row("norm", shape, "torch LN + modulation (reference)", t, pct(t))
        t = bench(lambda: norms.layer_norm_modulate(x, sh, sc))
        row("norm", shape, "fused LN + modulation (Triton)", t, pct(t))
        if variants:
            for cfg in [(False, 4, 8), (True, 1, 4), (True, 2, 4), (True, 2, 8), (True, 4, 8), (True, 4, 4),
                        (True, 8, 8), (True, 8, 16), (True, 16, 16)]:
                t = bench(lambda cfg=cfg: norms.layer_norm_modulate(x, sh, sc, config=cfg))
                row("norm", shape, f"  fused LN + mod (split,rows,warps)={cfg}", t, pct(t))
        t = bench(lambda: norms.rms_norm_reference(x, wt))
        row("norm", shape, "torch RMSNorm (reference, fast)", t, pct(t))
        t = bench(lambda: norms.rms_norm(x, wt))
        row("norm", shape, "RMSNorm (Triton)", t, pct(t))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1.3B shapes only")
    ap.add_argument("--variants", action="store_true", help="also time launch-config variants")
    ap.add_argument("--only", default="attention,linear,ffn,gelu,norm", help="also: blockmap, kvstate")
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}", flush=True)
    import triton

    print(f"triton {triton.__version__}", flush=True)
    bw = copy_bandwidth()
    print(f"copy bandwidth (read+write): {bw:.2f} TB/s", flush=True)
    only = args.only.split(",")
    if "attention" in only:
        bench_attention([12] if args.quick else [12, 40], 0.1, args.variants)
    if "linear" in only:
        shapes = [(1536, 8960), (8960, 1536), (1536, 1536)]
        if not args.quick:
            shapes += [(5120, 13824), (13824, 5120), (5120, 5120)]
        bench_linear(shapes, args.variants)
    if "ffn" in only:
        bench_ffn([(1536, 8960)] if args.quick else [(1536, 8960), (5120, 13824)])
    if "gelu" in only:
        bench_gelu_epilogue([(1536, 8960)] if args.quick else [(1536, 8960), (5120, 13824)])
    if "blockmap" in only:
        for H in ([12] if args.quick else [12, 40]):
            q, k = (torch.randn(1, L, H, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
            for mode in ("reference", "exact", "fast"):
                row("attention", f"1x{L}x{H}x128 topk0.1", f"  block map ({mode})",
                    bench(lambda mode=mode: sla.sla_block_indices(q, k, 0.1, mode=mode)))
    if "kvstate" in only:  # launch variants of the linear-branch state kernel
        for H in ([12] if args.quick else [12, 40]):
            k, v = (torch.randn(1, L, H, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
            w = (torch.randn(128, 128, device="cuda") / 128**0.5).to(torch.bfloat16)
            ref = sla._linear_branch_state(k, v, w, config=(2048, 4))
            for c in [(2048, 4), (512, 4), (1024, 4), (1024, 8), (2048, 8), (4096, 8)]:
                got = sla._linear_branch_state(k, v, w, config=c)
                err = max(float((a - b).norm() / b.norm()) for a, b in zip(got, ref))
                row("attention", f"1x{L}x{H}x128", f"  linear state (rows/program, warps)={c}",
                    bench(lambda c=c: sla._linear_branch_state(k, v, w, config=c)), f"rel L2 vs (2048, 4) {err:.1e}")
    if "norm" in only:
        bench_norms([1536] if args.quick else [1536, 5120], bw, args.variants)
    print("\n| family | shape | what | median ms | note |\n|---|---|---|---|---|")
    for r in ROWS:
        print(f"| {r[0]} | {r[1]} | {r[2].strip()} | {r[3]:.3f} | {r[4]} |")


if __name__ == "__main__":
    main()
