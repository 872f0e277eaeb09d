"""``python -m engine.train``: train the built-in tiny model on the synthetic world.

    python -m engine.train all --out runs/tiny --device cuda          # every phase, in order
    python -m engine.train text|vae|teacher|student|sla --out runs/tiny  # one phase (resumes)
    python -m engine.train merge BASE TUNED PRETRAINED OUT [--quant]   # base + (tuned - pretrained)
    python -m engine.train install runs/tiny [--dtype float16] [--no-teacher]  # engine/assets
    python -m engine.train sheet docs/tiny.png "a red circle moving left on a blue background"

Each phase stops at ``--<phase>-steps`` or ``--<phase>-seconds``, whichever comes first,
keeps ``<out>/<phase>.state.pt`` (models, optimizer, step, elapsed time) and resumes from it
when run again; delete the state file to start the phase over.  Phases read the previous
phases' exported files from ``<out>``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from engine.errors import TurboError

PHASES = ("text", "vae", "teacher", "student", "sla")
# Default budgets sized for one H100/H200 (seconds); CPU smoke runs pass small steps.
DEFAULTS = {"text": (3000, 30.0), "vae": (4000, 60.0), "teacher": (40000, 150.0), "student": (20000, 50.0), "sla": (5000, 30.0)}
ASSET_FILES = {  # run file -> engine/assets name (the shipped model, then the benchmark's extras)
    "student-sla0.safetensors": "tiny_dit.safetensors",  # dense student: served for attention original
    "student-sla0-quant.safetensors": "tiny_dit-quant.safetensors",
    "dit.safetensors": "tiny_dit-sla.safetensors",  # after the SLA fine-tune: served for sla / sagesla
    "dit-quant.safetensors": "tiny_dit-sla-quant.safetensors",
    "vae.safetensors": "tiny_vae.safetensors",
    "text_encoder.safetensors": "tiny_text_encoder.safetensors",
    "teacher.safetensors": "bench/tiny_teacher.safetensors",
    "guidance.json": "bench/tiny_guidance.json",
}


def install(run: Path, assets: Path, dtype: str = "float32", teacher: bool = True) -> list[str]:
    """Copy a run's shipped files into ``assets`` (:data:`ASSET_FILES`); returns what was written.

    ``dtype="float16"`` stores the float tensors of the safetensors files in float16 (half the
    package size; the loaders cast each tensor to the model's dtype), except the int8 layers'
    ``scale`` tensors, which the layout keeps in float32.  ``teacher=False`` leaves out the
    benchmark's teacher and guidance scale and removes those of an earlier install, which would
    not match the new student (``bench/quality.py --run`` still reads them from a run)."""
    import torch
    from safetensors.torch import load_file

    from engine.train.common import save_safetensors

    if dtype not in ("float32", "float16"):
        raise ValueError(f"install --dtype: float32 or float16, got {dtype!r}")
    files = {src: dst for src, dst in ASSET_FILES.items() if teacher or not dst.startswith("bench/")}
    missing = [src for src in files if not (run / src).is_file()]
    if missing:
        raise FileNotFoundError(f"{run} lacks {', '.join(missing)}: run the training phases first")
    done = []
    for dst in set(ASSET_FILES.values()) - set(files.values()):
        if (assets / dst).is_file():
            (assets / dst).unlink()
            done.append(f"removed {assets / dst} (from an earlier install)")
    for src, dst in files.items():
        target = assets / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        if dtype == "float16" and src.endswith(".safetensors"):
            sd = load_file(str(run / src))
            for k, t in sd.items():
                if t.is_floating_point() and not k.endswith(".scale"):
                    if t.abs().max().item() > torch.finfo(torch.float16).max:
                        raise ValueError(f"{run / src}: {k} exceeds the float16 range; install with --dtype float32")
                    sd[k] = t.to(torch.float16)
            save_safetensors(sd, target)
        else:
            shutil.copyfile(run / src, target)
        done.append(f"{run / src} -> {target}")
    return done


def _phase(name: str, a) -> None:
    import torch

    from engine.train.common import Budget, State

    steps, seconds = getattr(a, f"{name}_steps"), getattr(a, f"{name}_seconds")
    budget = Budget(steps if steps is not None else DEFAULTS[name][0],
                    seconds if seconds is not None else DEFAULTS[name][1])
    kw = dict(size=a.size, frames=a.frames, device=a.device, model=a.model)
    if a.batch is not None:
        kw["batch"] = a.batch
    lr = {"lr": a.lr} if a.lr is not None else {}
    kw.update(lr)
    if name != "text":
        kw["check_clips"] = a.check_clips
    state = State(a.out, name).path
    if a.init is not None and name in ("teacher", "student", "sla") and state.is_file():
        print(f"note: {state} exists, so {name} resumes it and --init is not used "
              "(a new continuation needs a fresh --out folder)", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    if name == "text":
        from engine.train.text import train_text
        train_text(a.out, budget, device=a.device, model=a.model, **lr)
    elif name == "vae":
        from engine.train.vae import train_vae
        train_vae(a.out, budget, decoder_only=a.decoder_only, crop=a.crop, **kw)
    elif name == "teacher":
        from engine.train.teacher import train_teacher
        train_teacher(a.out, budget, bank=a.bank, amp=a.amp, init=a.init, **kw)
    elif name == "student":
        from engine.train.student import train_student
        train_student(a.out, budget, trajectories=a.trajectories, traj_seconds=a.traj_seconds, amp=a.amp,
                      renoise=a.renoise, init=a.init, **kw)
    elif name == "sla":
        from engine.train.sla import train_sla
        train_sla(a.out, budget, rest_lr_scale=a.sla_rest_lr, target=a.sla_target, amp=a.amp, renoise=a.renoise,
                  trajectories=a.trajectories, traj_seconds=a.traj_seconds, init=a.init, **kw)
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    print(f"== {name} done in {time.monotonic() - t0:.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.train", description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=(*PHASES, "all", "merge", "install", "sheet"))
    ap.add_argument("args", nargs="*", help="merge: BASE TUNED PRETRAINED OUT; install: RUN_DIR")
    ap.add_argument("--out", type=Path, default=Path("runs/tiny"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="tiny",
                    help="preset: tiny, or a training-only DiT size (engine.train.common.TRAIN_PRESETS)")
    ap.add_argument("--size", type=int, default=192, help="clip height = width (multiple of 16)")
    ap.add_argument("--frames", type=int, default=9, help="clip length, 4k+1")
    ap.add_argument("--batch", type=int, default=None, help="override every phase's batch size")
    ap.add_argument("--lr", type=float, default=None,
                    help="override the phase's peak learning rate (e.g. a lower one to continue a student)")
    ap.add_argument("--trajectories", type=int, default=2048)
    ap.add_argument("--traj-seconds", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--bank", type=int, default=6144, help="teacher: clips encoded once into the latent bank")
    ap.add_argument("--amp", action="store_true",
                    help="teacher, student, sla: bfloat16 autocast (the teacher phase: 1.3x faster on an H200)")
    ap.add_argument("--check-clips", type=int, default=48,
                    help="validation clips each phase generates and scores at its end (0: no check)")
    ap.add_argument("--crop", type=int, default=128, help="vae: training crop side (multiple of 8)")
    ap.add_argument("--decoder-only", action="store_true", help="vae: refit the decoder of <out>/vae.safetensors")
    ap.add_argument("--renoise", type=float, default=0.0,
                    help="student, sla --sla-target teacher: share of the draws at knots 1-3 fed re-noised end points "
                         "(the SDE sampler's states)")
    ap.add_argument("--init", type=Path, default=None,
                    help="teacher, student, sla: start from this DiT file (an earlier teacher, student or SLA "
                         "fine-tune) instead of fresh weights (teacher), the teacher (student) or the student "
                         "with zero proj_l (sla)")
    ap.add_argument("--sla-target", default="dense", choices=("dense", "teacher"),
                    help="sla: match the dense student's velocity, or regress onto the teacher's trajectories")
    ap.add_argument("--sla-rest-lr", type=float, default=0.1,
                    help="sla: learning rate of the weights other than proj_l, as a fraction of proj_l's")
    ap.add_argument("--quant", action="store_true", help="merge: write the -quant layout")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float16"),
                    help="install: storage dtype of the float tensors (float16 halves the package)")
    ap.add_argument("--no-teacher", action="store_true", help="install: leave out the benchmark's teacher")
    ap.add_argument("--assets", type=Path, default=None, help="install: target folder (default engine/assets)")
    for ph in PHASES:
        ap.add_argument(f"--{ph}-steps", type=int, default=None)
        ap.add_argument(f"--{ph}-seconds", type=float, default=None)
    a = ap.parse_args(argv)

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    if a.command == "merge":
        from engine.train.merge import merge_files
        if len(a.args) != 4:
            ap.error("merge needs BASE TUNED PRETRAINED OUT")
        try:
            print(merge_files(*a.args, model=a.model, quant=a.quant))
        except (TurboError, ValueError) as e:  # a missing or mismatched file: one line, not a traceback
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    if a.command == "sheet":  # sheet OUT.png PROMPT... (the shipped model, seed 0)
        from engine.train.sheet import contact_sheet
        print(contact_sheet(a.args[0], a.args[1:]))
        return 0
    if a.command == "install":
        run = Path(a.args[0]) if a.args else a.out
        assets = a.assets or Path(__file__).resolve().parents[1] / "assets"
        try:
            print("\n".join(install(run, assets, a.dtype, teacher=not a.no_teacher)))
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    a.out.mkdir(parents=True, exist_ok=True)
    try:
        for ph in PHASES if a.command == "all" else (a.command,):
            _phase(ph, a)
    except TurboError as e:  # e.g. a phase's input file is missing: say which, keep what is saved
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
