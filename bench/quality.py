"""Quality benchmark of the built-in tiny model: prompt adherence per speed knob.

    python bench/quality.py                         # shipped weights (engine/assets), CPU
    python bench/quality.py --run runs/tiny --device cuda --clips 96
    python bench/quality.py --rows student4,final-sla0.1,final-int8 --clips 12
    python bench/quality.py --rows student4 --clips 72 --confusion   # where the motion errors go

Each row generates the same held-out clips (prompts from attribute combinations never seen
in training, seeds training never used; engine.train.world.eval_specs) exactly as a turn of
the pipeline would (same noise draws per seed, engine.pipeline.denoise, VAE decode, uint8
frames), then the deterministic analyzer (engine.train.analyze) recovers object colour,
background colour and motion.  Columns: mean attribute accuracy ("attr", the headline),
per-attribute accuracies, all-three-right, and temporal consistency.  A first row scores the
synthetic world's own clips (the analyzer's ceiling).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from engine import loading  # noqa: E402
from engine.train.common import preset  # noqa: E402
from engine.train.analyze import analyze, confusion, confusion_markdown, score  # noqa: E402
from engine.train.evaluate import contexts_for, generate, held_out, score_frames  # noqa: E402
from engine.train.world import MOTIONS, render  # noqa: E402
from engine.video import to_uint8_frames  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "engine" / "assets"
SIZE = 192  # the tiny model's clips: 192 x 192, 9 frames


@dataclass(frozen=True)
class Row:
    name: str
    file: str  # key into the files table
    attention: str = "sla"
    topk: float = 0.1
    steps: int = 4  # rCM steps; 0 = teacher Euler ODE with --teacher-steps
    quant: bool = False
    dtype: str = "float32"


def rows_table(dtype_lo: str) -> list[Row]:
    rows = [Row("teacher-euler", "teacher", "original", steps=0)]
    rows += [Row(f"student{n}", "student", "original", steps=n) for n in (1, 2, 3, 4)]
    rows += [Row(f"student4-{dtype_lo}", "student", "original", dtype=dtype_lo),
             Row("student4-int8", "student_quant", "original", quant=True)]
    rows += [Row(f"student-sla{k}", "student", "sla", k) for k in (0.05, 0.1, 0.15, 0.3)]
    rows += [Row("final-dense", "final", "original")]
    rows += [Row(f"final-sla{k}", "final", "sla", k) for k in (0.05, 0.1, 0.15, 0.3)]
    rows += [Row(f"final-{dtype_lo}", "final", "sla", 0.1, dtype=dtype_lo),
             Row("final-int8", "final_quant", "sla", 0.1, quant=True),
             Row(f"final-int8-{dtype_lo}", "final_quant", "sla", 0.1, quant=True, dtype=dtype_lo)]
    # 3 steps: the trained tiny's turn default (engine.api.default_request)
    rows += [Row("student3-int8", "student_quant", "original", quant=True, steps=3),
             Row("final-sla0.1-3steps", "final", "sla", 0.1, steps=3)]
    return rows


def files_from(run: Path | None) -> dict[str, Path]:
    """The files of each row: a training run's folder, or the shipped assets (same roles)."""
    if run is None:
        return {"teacher": ASSETS / "bench/tiny_teacher.safetensors", "student": ASSETS / "tiny_dit.safetensors",
                "student_quant": ASSETS / "tiny_dit-quant.safetensors",
                "final": ASSETS / "tiny_dit-sla.safetensors", "final_quant": ASSETS / "tiny_dit-sla-quant.safetensors",
                "vae": ASSETS / "tiny_vae.safetensors", "text": ASSETS / "tiny_text_encoder.safetensors",
                "guidance": ASSETS / "bench/tiny_guidance.json"}
    return {"teacher": run / "teacher.safetensors", "student": run / "student-sla0.safetensors",
            "student_quant": run / "student-sla0-quant.safetensors",
            "final": run / "dit.safetensors", "final_quant": run / "dit-quant.safetensors",
            "vae": run / "vae.safetensors", "text": run / "text_encoder.safetensors",
            "guidance": run / "guidance.json"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None, help="a training run folder (default: engine/assets)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="tiny", help="the run's preset (python -m engine.train --model)")
    ap.add_argument("--clips", type=int, default=48)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--teacher-steps", type=int, default=24)
    ap.add_argument("--teacher-guidance", type=float, default=None,
                    help="classifier-free guidance of the teacher row (default: the run's guidance.json, else 1)")
    ap.add_argument("--rows", default=None, help="comma-separated row names (default: all)")
    ap.add_argument("--low-dtype", default=None, help="bfloat16 (default on CUDA) or float16")
    ap.add_argument("--confusion", action="store_true",
                    help="also print each row's motion confusion table (truth x analyzed)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    lo = a.low_dtype or "bfloat16"
    files = files_from(a.run)
    p = preset(a.model)
    specs, seeds = held_out(a.clips, SIZE, 9)
    guidance = a.teacher_guidance
    if guidance is None:
        guidance = json.loads(files["guidance"].read_text())["guidance"] if files["guidance"].exists() else 1.0
    rows = rows_table(lo)
    if a.rows:
        wanted = a.rows.split(",")
        rows = [r for r in rows if r.name in wanted]

    results, confusions = {}, {}
    ref = [to_uint8_frames(v.numpy()) for v in render(specs)]
    results["world (analyzer ceiling)"] = score_frames(ref, specs)
    text = loading.load_text_encoder(files["text"], p.text, device=dev, dtype=torch.float32)
    contexts = contexts_for(text, [s.caption for s in specs], p.text.text_len)
    uncond = contexts_for(text, [""], p.text.text_len)
    vaes: dict = {}
    for row in rows:
        if not files[row.file].is_file():
            print(f"{row.name:24s} skipped: {files[row.file]} is missing", flush=True)
            continue
        t0 = time.perf_counter()
        dt = loading._as_dtype(row.dtype)
        if row.dtype not in vaes:
            vaes[row.dtype] = loading.load_vae(files["vae"], p.vae, device=dev, dtype=dt)
        dit = loading.load_dit(files[row.file], p.dit, attention=row.attention, quant_linear=row.quant,
                               device=dev, dtype=dt)
        frames = generate(dit, vaes[row.dtype], contexts, specs, seeds, size=SIZE, steps=row.steps,
                          teacher_steps=a.teacher_steps, topk=row.topk, dtype=dt, device=dev, batch=a.batch,
                          guidance=guidance, uncond=uncond)
        analyses = [analyze(f) for f in frames]
        truths = [sp.attributes for sp in specs]
        res = score(analyses, truths)
        res["seconds"] = time.perf_counter() - t0
        results[row.name] = res
        confusions[row.name] = confusion(analyses, truths)
        print(f"{row.name:24s} attr {res['attr']:.3f}  all {res['all']:.3f}  tc {res['consistency']:.3f}  "
              f"({res['seconds']:.1f} s)", flush=True)

    print(f"\n{a.clips} held-out clips, device {dev}, teacher Euler steps {a.teacher_steps}, "
          f"teacher guidance {guidance}\n")
    print("| row | attr acc | colour | background | motion | all 3 | temporal consistency |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {100 * r['attr']:.1f} | {100 * r['colour']:.1f} | {100 * r['background']:.1f} | "
              f"{100 * r['motion']:.1f} | {100 * r['all']:.1f} | {r['consistency']:.3f} |")
    if a.confusion:
        for name, table in confusions.items():
            print(f"\nmotion, {name}:\n")
            print("\n".join(confusion_markdown(table, MOTIONS)))
    if a.json:
        for name, table in confusions.items():
            results[name]["motion_confusion"] = table
        a.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
