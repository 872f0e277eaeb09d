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

from engine.api import LaunchConfig, default_request, open_engine  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--random-weights", action="store_true")
    p.add_argument("--attention", default="sla", choices=("original", "sla", "sagesla"))
    p.add_argument("--quant-linear", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--offload-text-encoder", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--resolution")
    p.add_argument("--aspect-ratio", default="16:9")
    p.add_argument("--num-frames", type=int)
    p.add_argument("--num-steps", type=int, default=4)
    p.add_argument("--sla-topk", type=float, default=0.1)
    p.add_argument("--image", help="I2V input image (I2V models)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--new-prompt-each-turn", action="store_true", help="measure uncached prompt encoding")
    p.add_argument("--json", help="also write the numbers to this file")
    a = p.parse_args(argv)

    launch = LaunchConfig(model=a.model, random_weights=a.random_weights, attention=a.attention,
                          quant_linear=a.quant_linear, device=a.device, dtype=a.dtype,
                          offload_text_encoder=a.offload_text_encoder, compile=a.compile)
    t0 = time.perf_counter()
    engine = open_engine(launch)
    load_s = time.perf_counter() - t0
    req = default_request(a.model, "a red fox running through fresh snow, cinematic")
    changes = {"num_steps": a.num_steps, "sla_topk": a.sla_topk, "aspect_ratio": a.aspect_ratio, "image_path": a.image}
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


if __name__ == "__main__":
    sys.exit(main())
