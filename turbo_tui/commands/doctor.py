"""``turbo-tui doctor``: what this machine can run, and whether the configured checkpoints are there."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from turbo_tui.config import CHECKPOINT_KEYS, Settings

# Expected file sizes of the published checkpoints, as [low, high) bytes.  From the element
# counts in shared/reference/keys/index.json times the inferred dtypes (FORMATS.md section 1):
# bf16 DiT 1.3B 2.84 GB, 1.3B-quant 1.45 GB, 14B 28.6 GB, 14B-quant 14.5 GB; VAE 508 MB
# (float32); umT5-XXL encoder 11.36 GB (bf16).  Ranges leave room for float32 copies.
GB = 1e9
SIZE_CLASSES = {
    ("dit", "Wan2.1-1.3B"): [(1.3 * GB, 1.7 * GB, "1.3B int8"), (2.6 * GB, 3.1 * GB, "1.3B bf16"), (5.4 * GB, 6.0 * GB, "1.3B float32")],
    ("dit", "Wan2.1-14B"): [(13.5 * GB, 15.5 * GB, "14B int8"), (27 * GB, 30 * GB, "14B bf16"), (55 * GB, 60 * GB, "14B float32")],
    ("high_noise", "Wan2.2-A14B"): [(13.5 * GB, 15.5 * GB, "A14B int8"), (27 * GB, 30 * GB, "A14B bf16")],
    ("low_noise", "Wan2.2-A14B"): [(13.5 * GB, 15.5 * GB, "A14B int8"), (27 * GB, 30 * GB, "A14B bf16")],
    ("vae", None): [(0.24 * GB, 0.27 * GB, "VAE bf16"), (0.48 * GB, 0.54 * GB, "VAE float32")],
    ("text_encoder", None): [(10.8 * GB, 12 * GB, "umT5-XXL bf16"), (21.5 * GB, 23.5 * GB, "umT5-XXL float32")],
}


def size_class(role: str, model: str, size: int) -> str | None:
    classes = SIZE_CLASSES.get((role, model)) or SIZE_CLASSES.get((role, None))
    if not classes:
        return None
    for lo, hi, name in classes:
        if lo <= size < hi:
            return name
    return None


def _checkpoint_rows(settings: Settings) -> list[tuple[str, str, str]]:
    launch = settings.launch
    rows = []
    for key, field in CHECKPOINT_KEYS.items():
        path = getattr(launch, field)
        if not path:
            rows.append((key, "-", "not configured"))
            continue
        p = Path(os.path.expanduser(path))
        if key == "tokenizer":
            ok = p.is_dir() and any(p.glob("*token*"))
            rows.append((key, str(p), "folder found" if ok else "[red]missing or not a tokenizer folder[/]"))
            continue
        if not p.is_file():
            rows.append((key, str(p), "[red]file not found[/]"))
            continue
        size = p.stat().st_size
        cls = size_class(key, launch.model, size)
        verdict = f"{size / GB:.2f} GB" + (f", looks like {cls}" if cls else ", [yellow]unexpected size for this model[/]")
        rows.append((key, str(p), verdict))
    return rows


def run_doctor(settings: Settings) -> int:
    console = Console()
    console.print(f"[bold]turbo-tui doctor[/]  Python {platform.python_version()} on {platform.system()} {platform.machine()}")
    console.print(f"config file: {settings.config_path or '(none; built-in defaults)'}")
    console.print(f"sessions: {settings.sessions_root}")
    console.print(f"model: {settings.launch.model}  attention: {settings.launch.attention}  "
                  f"int8 linears: {settings.launch.quant_linear}  device: {settings.launch.device}")

    try:
        import torch
    except ImportError:
        console.print("[red]torch is not installed[/]: pip install torch")
        return 1
    console.print(f"torch {torch.__version__}", end="")
    try:
        import triton

        console.print(f", triton {triton.__version__}")
    except ImportError:
        console.print(", triton not installed")

    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            free, total = torch.cuda.mem_get_info(i)
            console.print(f"cuda:{i} {props.name}, compute {props.major}.{props.minor}, "
                          f"{total / 2**30:.1f} GiB ({free / 2**30:.1f} free)")
    else:
        console.print("CUDA: no GPU visible to torch; the engine runs on the CPU (the tiny model is the practical choice)")

    from kernels.registry import attention_backends, linear_backends

    table = Table(title="backends (fast kernels; the plain-torch reference always runs)")
    table.add_column("kind")
    table.add_column("backend")
    table.add_column("usable")
    table.add_column("why")
    for kind, backends in (("attention", attention_backends()), ("linear", linear_backends())):
        for name, (usable, reason) in backends.items():
            table.add_row(kind, name, "[green]yes[/]" if usable else "[red]no[/]", escape(reason))
    console.print(table)

    ct = Table(title="checkpoints")
    for col in ("role", "path", "status"):
        ct.add_column(col)
    for role, path, status in _checkpoint_rows(settings):
        ct.add_row(role, escape(path), status)
    console.print(ct)
    if settings.launch.model.startswith("tiny"):
        from engine.assets import shipped_checkpoints

        launch = settings.launch
        shipped = shipped_checkpoints(launch.model, launch.quant_linear, launch.resolved_attention())
        weights = (f"its trained weights ship with turbo-tui ({escape(str(Path(shipped['dit']).parent))})"
                   if shipped else "it runs with deterministic random weights")
        console.print(f"{launch.model} is built in: it needs none of these files; {weights}.")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_doctor(Settings()))
