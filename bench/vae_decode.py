"""VAE decode and 4-step DiT loop: time each speed-up variant against the plain path (issue 9).

    python3 bench/vae_decode.py            # CUDA: Wan2.1-1.3B shapes, random weights (< 6 min on an H100)
    python3 bench/vae_decode.py --smoke    # tiny shapes on any device (checks that every path runs)

VAE: decode of a [1, 16, 21, 60, 104] latent (-> 81 x 480 x 832) per variant, each adding one
option to the row above it (:class:`engine.models.wan_vae.FastDecode`, cudnn.benchmark, channels-
last 3-D weights), with CUDA-event time (median of ``--repeats`` after a warm-up), peak memory of
one decode, and the relative L2 difference from the first row.  DiT: the 4-step rCM loop of the
sla/bf16 1.3B model (x [1, 16, 21, 60, 104], the same noise every run) eager, replayed as a CUDA
graph (:class:`engine.graphs.GraphedDiT`), with torch.compile'd blocks, and both.  torch.compile
variants run last and are skipped once ``--deadline-s`` has passed.  Markdown tables go to stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from engine import loading  # noqa: E402
from engine.configs import VAEConfig, get_preset  # noqa: E402
from engine.graphs import GraphedDiT, compile_blocks_  # noqa: E402
from engine.models.wan_vae import FastDecode  # noqa: E402
from engine.pipeline import denoise  # noqa: E402
from engine.sampler import rcm_schedule  # noqa: E402

T0 = time.perf_counter()


def log(*args) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s]", *args, file=sys.stderr, flush=True)


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, float, object]:
    """(first call's seconds incl. warm-up work, median seconds of ``repeats`` further calls, last result)."""
    def once():
        if device.type == "cuda":
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            out = fn()
            e.record()
            torch.cuda.synchronize(device)
            return s.elapsed_time(e) / 1000, out
        t = time.perf_counter()
        out = fn()
        return time.perf_counter() - t, out

    first, out = once()
    times = []
    for _ in range(repeats):
        dt, out = once()
        times.append(dt)
    return first, statistics.median(times), out


def peak_of(fn: Callable[[], object], device: torch.device) -> float | None:
    """GiB allocated at the peak of one call (CUDA), above what was allocated before it."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**30


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


# ---------------------------------------------------------------------------------------------
# VAE decode

def vae_variants(compile_rows: bool) -> list[tuple[str, dict]]:
    """(name, settings) in order; each row adds to the one before unless it says otherwise."""
    fast = FastDecode()
    rows = [
        ("plain (contiguous, cuDNN default)", dict(benchmark=False, cl=False, fast=None)),
        ("+ cudnn.benchmark", dict(benchmark=True, cl=False, fast=None)),
        ("+ channels-last 3-D (engine before)", dict(benchmark=True, cl=True, fast=None)),
        ("+ FastDecode(): CL interleave, bf16 upsample (engine now)", dict(benchmark=True, cl=True, fast=fast)),
        ("+ static_cache", dict(benchmark=True, cl=True, fast=FastDecode(static_cache=True))),
        ("FastDecode(frames_per_chunk=2)", dict(benchmark=True, cl=True, fast=FastDecode(frames_per_chunk=2))),
        ("FastDecode(frames_per_chunk=4)", dict(benchmark=True, cl=True, fast=FastDecode(frames_per_chunk=4))),
        ("FastDecode(static_cache, frames_per_chunk=4)",
         dict(benchmark=True, cl=True, fast=FastDecode(static_cache=True, frames_per_chunk=4))),
    ]
    if compile_rows:
        rows = [
            ("FastDecode(compile='default')", dict(benchmark=True, cl=True, fast=FastDecode(compile="default"))),
            ("FastDecode(compile='max-autotune-no-cudagraphs')",
             dict(benchmark=True, cl=True, fast=FastDecode(compile="max-autotune-no-cudagraphs"))),
        ]
    return rows


def bench_vae(device: torch.device, dtype: torch.dtype, smoke: bool, repeats: int, deadlines: dict,
              compile_rows: bool, profile: bool, state: dict) -> str:
    """The plain rows (``compile_rows`` False) or the torch.compile rows; ``state`` carries the
    model, the latent and the first row's output from one call to the next."""
    if "vae" not in state:
        cfg = VAEConfig(dim=4) if smoke else get_preset("Wan2.1-1.3B").vae
        shape = (1, 16, 3, 4, 6) if smoke else (1, 16, 21, 60, 104)
        g = torch.Generator(device=device).manual_seed(1)
        state["lat"] = torch.randn(shape, device=device, generator=g).to(dtype)
        state["vae"] = loading.build_random_vae(cfg, 3, device=device, dtype=dtype)
    vae, lat = state["vae"], state["lat"]
    rows = []
    cudnn_before = torch.backends.cudnn.benchmark
    for name, v in vae_variants(compile_rows):
        mode = v["fast"].compile if v["fast"] is not None else None
        if mode and time.perf_counter() - T0 > deadlines.get(mode, deadlines["compile"]):
            rows.append([name, "skipped (deadline)", "", "", "", ""])
            continue
        try:
            torch.backends.cudnn.benchmark = v["benchmark"] and device.type == "cuda"
            if v["cl"] and not vae.channels_last:
                vae.to_channels_last_()
            vae.fast_decode = v["fast"]
            with torch.inference_mode():
                first, med, out = timed(lambda: vae.decode(lat), device, repeats)
                peak = peak_of(lambda: vae.decode(lat), device)
            out = out.float()
            base = state.setdefault("base", out)
            err = rel_l2(out, base)
            exact = bool(torch.equal(out, base))
            rows.append([name, f"{med:.3f}", f"{first:.1f}", fmt(peak, ".2f"), f"{err:.2e}", "yes" if exact else "no"])
            log("vae", *rows[-1])
            del out
        except Exception as e:  # keep going: the other rows still count
            traceback.print_exc()
            rows.append([name, f"FAILED: {type(e).__name__}: {str(e).splitlines()[0][:120]}", "", "", "", ""])
            log("vae", *rows[-1])
        if device.type == "cuda":
            torch.cuda.empty_cache()
    prof = ""
    if profile and device.type == "cuda":
        try:
            prof = profile_decode(vae, lat)
        except Exception as e:  # the timings above matter more than the profile
            traceback.print_exc()
            prof = f"\n(profile failed: {type(e).__name__}: {str(e).splitlines()[0][:200]})\n"
    torch.backends.cudnn.benchmark = cudnn_before
    shape = list(lat.shape)
    out = table(f"VAE decode {shape} -> {shape[2] * 4 - 3} frames ({device}, {str(dtype).removeprefix('torch.')})"
                + (", torch.compile rows" if compile_rows else ""),
                ["variant", "decode s (median)", "first call s", "peak GiB (above weights)", "rel L2 vs first row",
                 "bit-equal"], rows)
    return out + prof


def profile_decode(vae, lat) -> str:
    """Top CUDA kernels of one decode with FastDecode() (where the rest of the time is)."""
    from torch.profiler import ProfilerActivity, profile

    vae.fast_decode = FastDecode()
    torch.backends.cudnn.benchmark = True
    with torch.inference_mode():
        vae.decode(lat)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as p:
            vae.decode(lat)
            torch.cuda.synchronize()
    rows = []
    events = sorted(p.key_averages(), key=lambda e: e.device_time_total, reverse=True)
    total = sum(e.device_time_total for e in events if e.device_type == torch.autograd.DeviceType.CUDA) or 1
    for e in events[:15]:
        rows.append([e.key[:90].replace("|", "/"), f"{e.device_time_total / 1e3:.1f}", f"{e.count}",
                     f"{100 * e.device_time_total / total:.1f}"])
    return "\n" + table("Profile of one FastDecode() decode (CUDA kernels, top 15)",
                        ["kernel / op", "CUDA ms", "calls", "% of kernel time"], rows)


# ---------------------------------------------------------------------------------------------
# DiT loop

def bench_dit(device: torch.device, dtype: torch.dtype, smoke: bool, repeats: int, deadline: float,
              compile_rows: bool, state: dict) -> str:
    """Eager (the reference for rel L2) and the CUDA-graph row, or the torch.compile rows; ``state``
    carries the model, its inputs and the eager result from one call to the next."""
    if "net" not in state:
        cfg = get_preset("tiny").dit if smoke else get_preset("Wan2.1-1.3B").dit
        state["shape"] = (1, 16, 3, 8, 8) if smoke else (1, 16, 21, 60, 104)
        state["net"] = loading.build_random_dit(cfg, 7, attention="sla", quant_linear=False, device=device,
                                                dtype=dtype)
        g = torch.Generator(device=device).manual_seed(2)
        state["noise"] = torch.randn(state["shape"], device=device, generator=g)
        ctx = torch.randn(1, cfg.text_len, cfg.text_dim, device=device, generator=g).to(dtype)
        ctx[:, 40:] = 0  # padded rows are zeros, as the pipeline hands them over
        state["ctx"] = ctx
    net, shape, noise, ctx = state["net"], state["shape"], state["noise"], state["ctx"]
    rf_t = rcm_schedule(4, 80.0)

    def loop(runner) -> torch.Tensor:
        gen = torch.Generator(device=device).manual_seed(3)  # the same SDE noise every run
        return denoise({"main": runner}, ctx, None, noise, rf_t, dtype, sla_topk=0.1,
                       next_noise=lambda: torch.randn(shape, device=device, generator=gen))

    if not compile_rows:
        variants: list[tuple[str, Callable[[], object], bool]] = [
            ("eager", lambda: net, False), ("CUDA graph (GraphedDiT)", lambda: GraphedDiT(net), False)]
    else:
        variants = [
            ("compiled blocks (torch.compile default)", lambda: compile_blocks_(net), True),
            ("compiled blocks + CUDA graph", lambda: GraphedDiT(net), True),
        ]
    rows = []
    for name, make, is_compile in variants:
        if is_compile and time.perf_counter() - T0 > deadline:
            rows.append([name, "skipped (deadline)", "", "", "", ""])
            continue
        try:
            before = torch.cuda.memory_allocated(device) if device.type == "cuda" else None
            runner = make()
            with torch.inference_mode():
                first, med, out = timed(lambda: loop(runner), device, repeats)
                # a CUDA graph's activations live in its pool from the capture on: "held" counts them
                held = None if before is None else (torch.cuda.memory_allocated(device) - before) / 2**30
                peak = peak_of(lambda: loop(runner), device)
            base = state.setdefault("base", out)
            rows.append([name, f"{med:.3f}", f"{first:.1f}", fmt(peak, ".2f"), fmt(held, ".2f"),
                         f"{rel_l2(out, base):.2e}"])
            log("dit", *rows[-1])
            del runner
        except Exception as e:
            traceback.print_exc()
            rows.append([name, f"FAILED: {type(e).__name__}: {str(e).splitlines()[0][:120]}", "", "", "", ""])
            log("dit", *rows[-1])
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return table(f"4-step DiT loop, {'tiny' if smoke else 'Wan2.1-1.3B'} sla top-k 0.1, x {list(shape)} "
                 f"({device}, {str(dtype).removeprefix('torch.')})" + (", torch.compile rows" if compile_rows else ""),
                 ["variant", "loop s (median)", "first call s (capture/compile)", "peak GiB of a loop (above weights)",
                  "GiB held between loops (graph pool)", "rel L2 vs eager (final latent)"], rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny shapes on any device (a few seconds on a CPU)")
    p.add_argument("--device", default="auto")
    p.add_argument("--parts", default="vae,dit,compile", help="comma list of vae, dit, compile (torch.compile rows)")
    p.add_argument("--repeats", type=int, help="timed runs per variant after the first (default 3, smoke 1)")
    p.add_argument("--deadline-s", type=float, default=240.0,
                   help="start no torch.compile variant after this many seconds")
    p.add_argument("--autotune-deadline-s", type=float, default=150.0,
                   help="start the max-autotune VAE compile only before this many seconds")
    p.add_argument("--no-profile", action="store_true", help="skip the profile of the VAE decode (CUDA)")
    a = p.parse_args(argv)
    a.repeats = a.repeats or (1 if a.smoke else 3)
    if a.smoke:
        torch.set_num_threads(1)  # tiny tensors: threads only contend (a loaded 2-core machine: 80 s -> 3 s)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    parts = set(a.parts.split(","))
    # torch.compile needs a GPU here (on a CPU it needs a C++ toolchain and takes minutes)
    compile_ok = "compile" in parts and device.type == "cuda"
    deadlines = {"compile": a.deadline_s, "max-autotune-no-cudagraphs": a.autotune_deadline_s}
    head = f"# {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}, torch {torch.__version__}"
    print(head, flush=True)
    torch.manual_seed(0)
    vae_state: dict = {}
    dit_state: dict = {}

    def show(text: str) -> None:
        print(text, flush=True)

    # cheap rows first, then the torch.compile rows (DiT blocks, then the VAE decoder)
    if "dit" in parts:
        show(bench_dit(device, dtype, a.smoke, a.repeats, a.deadline_s, False, dit_state))
    if "vae" in parts:
        show(bench_vae(device, dtype, a.smoke, a.repeats, deadlines, False, not a.no_profile and not a.smoke,
                       vae_state))
    if compile_ok and "dit" in parts:
        show(bench_dit(device, dtype, a.smoke, a.repeats, a.deadline_s, True, dit_state))
    if compile_ok and "vae" in parts:
        show(bench_vae(device, dtype, a.smoke, a.repeats, deadlines, True, False, vae_state))
    print(f"# total {time.perf_counter() - T0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
