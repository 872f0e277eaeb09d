"""Whole-turn benchmark: per-stage times, total and peak memory for one model configuration.

    python bench/turn.py                                   # tiny model on this machine (CPU ok)
    python bench/turn.py --model Wan2.1-1.3B --random-weights --attention sla
    python bench/turn.py --model Wan2.1-1.3B --random-weights --attention sagesla --quant-linear

Random weights have the real shapes (speed does not depend on weight values).  It runs
``--warmup`` turns, then ``--repeats`` timed turns, and prints the median of each stage.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.api import ATTENTION_CHOICES, LaunchConfig, default_request, open_engine  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--random-weights", action="store_true")
    p.add_argument("--attention", default="auto", choices=ATTENTION_CHOICES,
                   help="auto: original for tiny, sla for Wan (engine.api.LaunchConfig)")
    p.add_argument("--quant-linear", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--offload-text-encoder", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--resolution")
    p.add_argument("--aspect-ratio", help="default: the model's (16:9; 1:1 for the tiny models)")
    p.add_argument("--num-frames", type=int)
    p.add_argument("--num-steps", type=int, default=4)
    p.add_argument("--sla-topk", type=float, default=0.1)
    p.add_argument("--image", help="I2V input image (I2V models)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--new-prompt-each-turn", action="store_true", help="measure uncached prompt encoding")
    p.add_argument("--json", help="also write the numbers to this file")
    p.add_argument("--suite", metavar="DIR", help="CUDA: the whole measurement suite (turns of every "
                   "backend, agreement with the reference path, profile, VAE, 14B loop) into DIR")
    p.add_argument("--suite-parts", default="turns,agree,vae,offload,14b")
    p.add_argument("--deadline-s", type=float, default=540.0, help="suite: skip parts past this many seconds")
    p.add_argument("--mp4-presets", metavar="LIST", help="only time write_mp4 per x264 preset (comma list) "
                   "on a smooth moving-shape clip and on noise, 81x480x832 (CPU work; no model)")
    p.add_argument("--sla-tma-config", metavar="W,S,TAIL,FOLD",
                   help="launch configuration of the Hopper SLA/SageSLA kernel for this run (warps, stages, "
                   "mask only the tail block 0/1, fold the scale 0/1); default kernels.sla.TMA_CONFIG")
    a = p.parse_args(argv)
    if a.sla_tma_config:
        from kernels import sla

        w, st, tail, fold = (int(v) for v in a.sla_tma_config.split(","))
        sla.TMA_CONFIG = {tag: (w, st, bool(tail), bool(fold)) for tag in sla.TMA_CONFIG}
    if a.mp4_presets:
        return mp4_presets(a.mp4_presets.split(","))
    if a.suite:
        return suite(Path(a.suite), a.suite_parts.split(","), a.deadline_s)

    launch = LaunchConfig(model=a.model, random_weights=a.random_weights, attention=a.attention,
                          quant_linear=a.quant_linear, device=a.device, dtype=a.dtype,
                          offload_text_encoder=a.offload_text_encoder, compile=a.compile)
    t0 = time.perf_counter()
    engine = open_engine(launch)
    load_s = time.perf_counter() - t0
    req = default_request(a.model, "a red fox running through fresh snow, cinematic")
    changes = {"num_steps": a.num_steps, "sla_topk": a.sla_topk, "image_path": a.image}
    if a.aspect_ratio:
        changes["aspect_ratio"] = a.aspect_ratio
    if a.resolution:
        changes["resolution"] = a.resolution
    if a.num_frames:
        changes["num_frames"] = a.num_frames
    req = req.replace(**changes)
    info = engine.info()
    print(f"# {info.model} on {info.device} ({info.dtype}), attention {info.attention}, "
          f"int8 {info.quant_linear}; load {load_s:.1f}s")
    print(f"# {req.resolution} {req.aspect_ratio}, {req.num_frames} frames, {req.num_steps} steps, topk {req.sla_topk}")

    runs = []
    with tempfile.TemporaryDirectory() as out:
        for i in range(a.warmup + a.repeats):
            r = req.replace(prompt=f"{req.prompt} #{i}") if a.new_prompt_each_turn else req
            res = engine.generate(r, out)
            if i >= a.warmup:
                runs.append(res)
    engine.close()

    stages = [k for k in runs[0].timings]
    table = {k: statistics.median(r.timings[k] for r in runs) for k in stages}
    table["total"] = statistics.median(r.total_s for r in runs)
    width = max(len(k) for k in table)
    for k, v in table.items():
        print(f"{k:<{width}}  {v * 1000:9.1f} ms")
    peak = max(r.peak_memory_bytes for r in runs)
    print(f"{'peak memory':<{width}}  {peak / 2**30:9.2f} GiB")
    if a.json:
        Path(a.json).write_text(json.dumps({"info": info.__dict__ | {"checkpoints": {}}, "request": req.to_dict(),
                                            "median_s": table, "peak_bytes": peak, "load_s": load_s}, indent=1))
    return 0


# ---------------------------------------------------------------------------------------------
def synthetic_clip(kind: str, frames: int = 81, height: int = 480, width: int = 832, seed: int = 0):
    """uint8 [F, H, W, 3]: "smooth" = a gradient background with a moving disc and square (real
    video compresses like this), "noise" = uniform noise (what random weights decode to)."""
    import numpy as np

    if kind == "noise":
        return np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((frames, height, width, 3), np.uint8)
    for f in range(frames):
        img = np.stack([xx / width * 200 + 20 * np.sin(f / 9), yy / height * 180 + 30,
                        np.full_like(xx, 90 + f)], -1)
        cx, cy = width * (0.2 + 0.6 * f / frames), height * (0.5 + 0.3 * np.sin(f / 12))
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < 60**2] = (240, 200, 40)
        sx, sy = int(width * 0.8 - 5 * f) % width, int(height * 0.2 + 2 * f) % height
        img[sy:sy + 80, sx:sx + 80] = (30, 60, 220)
        out[f] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def mp4_presets(presets: list[str]) -> int:
    import os

    from engine.video import write_mp4

    print(f"# write_mp4, 81x480x832, {os.cpu_count()} CPUs; seconds (best of 2) and bytes")
    print("| clip | preset | seconds | MB |\n|---|---|---|---|")
    for kind in ("smooth", "noise"):
        frames = synthetic_clip(kind)
        for preset in presets:
            with tempfile.TemporaryDirectory() as tmp:
                times = []
                for _ in range(2):
                    t0 = time.perf_counter()
                    p = write_mp4(frames, Path(tmp) / "clip.mp4", preset=preset)
                    times.append(time.perf_counter() - t0)
                print(f"| {kind} | {preset} | {min(times):.2f} | {p.stat().st_size / 1e6:.2f} |", flush=True)
    return 0


# The GPU suite: everything issue 9 asks for in one process (device time is scarce).

T0 = time.perf_counter()
PROMPT = "a red fox running through fresh snow, cinematic"


def _log(*args) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s]", *args, flush=True)


def _rel(a, b) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def _cuda_time(fn, reps: int = 3) -> float:
    """Median seconds of fn() over ``reps`` runs after one warm-up, timed with CUDA events."""
    import torch

    fn()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / 1000)
    return statistics.median(times)


def _free() -> None:
    import gc

    import torch

    gc.collect()
    torch.cuda.empty_cache()


def _turns(out: Path, results: dict, configs, offload: bool = False, repeats: int = 3) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for attention, quant in configs:
        name = f"{attention}-{'int8' if quant else 'bf16'}" + ("-offload" if offload else "")
        launch = LaunchConfig(model="Wan2.1-1.3B", random_weights=True, attention=attention, quant_linear=quant,
                              offload_text_encoder=offload)
        t0 = time.perf_counter()
        engine = open_engine(launch)
        load_s = time.perf_counter() - t0
        req = default_request("Wan2.1-1.3B", PROMPT).replace(num_steps=4, sla_topk=0.1)
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            engine.generate(req.replace(prompt=PROMPT + " warm"), tmp)  # warm-up (Triton compile, cuDNN)
            unc = engine.generate(req, tmp)  # uncached prompt
            for _ in range(repeats):
                rows.append(engine.generate(req, tmp))
            size = Path(rows[-1].video_paths[0]).stat().st_size
        med = {k: statistics.median(r.timings[k] for r in rows) for k in rows[0].timings}
        med["total"] = statistics.median(r.total_s for r in rows)
        results[name] = {"median_s": med, "uncached_total_s": unc.total_s, "uncached_encode_s": unc.timings["encode"],
                         "peak_gib": max(r.peak_memory_bytes for r in rows) / 2**30,
                         "peak_uncached_gib": unc.peak_memory_bytes / 2**30, "load_s": load_s, "mp4_bytes": size,
                         "loop_s": sum(v for k, v in med.items() if k.startswith("denoise.step"))}
        _log(name, json.dumps(results[name]))
        engine.close()
        del engine
        _free()
        (out / "turns.json").write_text(json.dumps(results, indent=1))


def _agree(out: Path, results: dict, configs, profile: bool) -> None:
    """One DiT forward: fused fast path vs the unfused fast path vs the plain reference path."""
    import torch

    from engine import loading
    from engine.configs import get_preset
    from kernels.registry import reference_only

    cfg = get_preset("Wan2.1-1.3B").dit
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(1, 16, 21, 60, 104, device="cuda", generator=g)
    ctx = torch.randn(1, 512, 4096, device="cuda", generator=g).to(torch.bfloat16)
    ctx[:, 40:] = 0  # padded rows are zeros, as the pipeline hands them over
    t = torch.full((1, 1), 988.0, device="cuda").to(torch.bfloat16)
    for attention, quant in configs:
        name = f"{attention}-{'int8' if quant else 'bf16'}"
        m = loading.build_random_dit(cfg, 7, attention=attention, quant_linear=quant, device="cuda",
                                     dtype=torch.bfloat16)
        row = {}
        with torch.inference_mode():
            fwd = lambda: m(x.to(torch.bfloat16), t, ctx)  # noqa: E731
            m.fused = True
            row["fused_forward_s"] = _cuda_time(fwd)
            fast = fwd().float()
            m.fused = False
            row["unfused_forward_s"] = _cuda_time(fwd)
            unfused = fwd().float()
            m.fused = True
            if profile and name == "sla-bf16" or name == "sagesla-int8" and profile:
                from torch.profiler import ProfilerActivity, profile as prof

                with prof(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as p:
                    fwd()
                    torch.cuda.synchronize()
                (out / f"profile-{name}.txt").write_text(
                    p.key_averages().table(sort_by="cuda_time_total", row_limit=40, max_name_column_width=70))
            t0 = time.perf_counter()
            with reference_only():
                ref = fwd().float()
                torch.cuda.synchronize()
            row["reference_forward_s"] = time.perf_counter() - t0
        row["rel_l2_fused_vs_ref"] = _rel(fast, ref)
        row["rel_l2_unfused_vs_ref"] = _rel(unfused, ref)
        row["rel_l2_fused_vs_unfused"] = _rel(fast, unfused)
        row["finite"] = bool(torch.isfinite(fast).all())
        results[name] = row
        _log("agree", name, json.dumps(row))
        del m, fast, unfused, ref
        _free()
        (out / "agree.json").write_text(json.dumps(results, indent=1))


def _vae(out: Path, results: dict) -> None:
    import torch

    from engine import loading
    from engine.configs import get_preset
    from kernels.registry import reference_only

    cfg = get_preset("Wan2.1-1.3B").vae
    g = torch.Generator(device="cuda").manual_seed(1)
    lat = torch.randn(1, 16, 21, 60, 104, device="cuda", generator=g).to(torch.bfloat16)
    vae = loading.build_random_vae(cfg, 3, device="cuda", dtype=torch.bfloat16)
    with torch.inference_mode():
        torch.backends.cudnn.benchmark = False
        with reference_only():
            results["decode_reference_s"] = _cuda_time(lambda: vae.decode(lat), reps=2)
            ref = vae.decode(lat).float()
        results["decode_fused_s"] = _cuda_time(lambda: vae.decode(lat), reps=2)
        torch.backends.cudnn.benchmark = True
        results["decode_fused_benchmark_s"] = _cuda_time(lambda: vae.decode(lat), reps=2)
        a = vae.decode(lat).float()
        vae.to_channels_last_()
        results["decode_fused_benchmark_cl_s"] = _cuda_time(lambda: vae.decode(lat), reps=2)
        b = vae.decode(lat).float()
        torch.cuda.reset_peak_memory_stats()
        vae.decode(lat)
        results["decode_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    # mp4 encoding time depends on the content: random weights decode to noise (worst case for
    # H.264); a smooth moving gradient of the same size stands in for real video.
    import numpy as np

    from engine.pipeline import to_uint8_frames_torch
    from engine.video import write_mp4

    noise = to_uint8_frames_torch(a)[0].cpu().numpy()
    yy, xx = np.mgrid[0:noise.shape[1], 0:noise.shape[2]]
    smooth = np.stack([np.stack([(xx + 4 * f) % 256, (yy + 2 * f) % 256, (xx + yy) // 8 % 256], -1)
                       for f in range(noise.shape[0])]).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        for name, frames in (("noise", noise), ("smooth", smooth)):
            t0 = time.perf_counter()
            write_mp4(frames, Path(tmp) / f"{name}.mp4")
            results[f"write_mp4_{name}_s"] = time.perf_counter() - t0
            results[f"write_mp4_{name}_bytes"] = (Path(tmp) / f"{name}.mp4").stat().st_size
    results["rel_l2_fused_vs_ref"] = _rel(a, ref)
    results["rel_l2_fused_cl_vs_ref"] = _rel(b, ref)
    _log("vae", json.dumps(results))
    (out / "vae.json").write_text(json.dumps(results, indent=1))


def _loop14b(out: Path, results: dict, configs) -> None:
    """Wan2.1-14B 480p: the 4-step rCM loop alone (DiT only), and its peak memory."""
    import torch

    from engine import loading
    from engine.configs import get_preset
    from engine.pipeline import denoise
    from engine.sampler import rcm_schedule

    cfg = get_preset("Wan2.1-14B").dit
    for attention, quant in configs:
        name = f"14B-{attention}-{'int8' if quant else 'bf16'}"
        m = loading.build_random_dit(cfg, 9, attention=attention, quant_linear=quant, device="cuda",
                                     dtype=torch.bfloat16)
        g = torch.Generator(device="cuda").manual_seed(2)
        noise = torch.randn(1, 16, 21, 60, 104, device="cuda", generator=g)
        ctx = torch.randn(1, 512, 4096, device="cuda", generator=g).to(torch.bfloat16)
        rf_t = rcm_schedule(4, 80.0)
        with torch.inference_mode():
            run = lambda: denoise({"main": m}, ctx, None, noise, rf_t, torch.bfloat16,  # noqa: E731
                                  next_noise=lambda: torch.randn_like(noise))
            run()
            torch.cuda.reset_peak_memory_stats()
            loop = _cuda_time(run, reps=1)
        results[name] = {"loop_s": loop, "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
                         "weights_gib": sum(t.numel() * t.element_size() for t in m.state_dict().values()) / 2**30}
        _log(name, json.dumps(results[name]))
        del m
        _free()
        (out / "loop14b.json").write_text(json.dumps(results, indent=1))


def _opt(out: Path, results: dict) -> None:
    """One 1.3B sla/bf16 DiT forward per option (block map "reference"/"exact", GELU in the GEMM
    epilogue off/on): time, bit-equality of the exact map's forward, agreement with the reference path."""
    import torch

    from engine import loading
    from engine.configs import get_preset
    from engine.models import wan_dit
    from kernels import sla
    from kernels.registry import reference_only

    cfg = get_preset("Wan2.1-1.3B").dit
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(1, 16, 21, 60, 104, device="cuda", generator=g).to(torch.bfloat16)
    ctx = torch.randn(1, 512, 4096, device="cuda", generator=g).to(torch.bfloat16)
    ctx[:, 40:] = 0
    t = torch.full((1, 1), 988.0, device="cuda").to(torch.bfloat16)
    m = loading.build_random_dit(cfg, 7, attention="sla", quant_linear=False, device="cuda", dtype=torch.bfloat16)
    m.fused = True
    outs = {}
    with torch.inference_mode():
        fwd = lambda: m(x, t, ctx)  # noqa: E731
        for block_map, gelu in (("reference", False), ("exact", False), ("reference", True), ("exact", True),
                                ("reference", False)):
            sla.BLOCK_MAP, wan_dit.FFN_GELU_EPILOGUE = block_map, gelu
            name = f"map={block_map},gelu_epilogue={gelu}"
            results[name] = {"forward_s": _cuda_time(fwd, reps=5)}
            outs[name] = fwd().float()
            _log("opt", name, results[name])
        sla.BLOCK_MAP, wan_dit.FFN_GELU_EPILOGUE = "reference", False
        with reference_only():
            ref = fwd().float()
    base = outs["map=reference,gelu_epilogue=False"]
    for name, o in outs.items():
        results[name]["rel_l2_vs_reference_path"] = _rel(o, ref)
        results[name]["bit_equal_to_map_reference_no_epilogue"] = bool(torch.equal(o, base))
        results[name]["rel_l2_vs_map_reference_no_epilogue"] = _rel(o, base)
    _log("opt", json.dumps(results, indent=1))
    (out / "opt.json").write_text(json.dumps(results, indent=1))
    del m
    _free()


def suite(out: Path, parts: list[str], deadline: float) -> int:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    info = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    _log(info)
    all_cfg = [("sla", False), ("sagesla", True), ("original", False), ("sagesla", False), ("sla", True),
               ("original", True)]
    for part in parts:
        if time.perf_counter() - T0 > deadline:
            _log("deadline: skipping", part)
            continue
        try:
            if part == "turns":
                _turns(out, {}, all_cfg)
            elif part == "turns_rest":  # the configurations after sla-bf16, original-bf16
                _turns(out, {}, [c for c in all_cfg if c not in (("sla", False), ("original", False))])
            elif part == "agree":
                _agree(out, {}, [("sla", False), ("sagesla", True), ("original", False)], profile=True)
            elif part == "vae":
                _vae(out, {})
            elif part == "opt":
                _opt(out, {})
            elif part == "offload":
                _turns(out / "offload", {}, [("sagesla", True)], offload=True, repeats=2)
            elif part == "14b":
                _loop14b(out, {}, [("sagesla", True), ("sla", False)])
        except Exception as e:  # keep going: the other parts' numbers still count
            import traceback

            traceback.print_exc()
            _log("FAILED", part, repr(e)[:300])
            _free()
    return 0


if __name__ == "__main__":
    sys.exit(main())
