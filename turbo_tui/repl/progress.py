"""Rendering one turn's progress: a line per sampling step, a live bar on terminals, timings."""

from __future__ import annotations

import threading

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from engine.api import STAGES, ProgressEvent, TurnResult


class TurnProgress:
    """Receives :class:`ProgressEvent` objects (from the engine's thread) and prints them.

    Every denoising step and every finished stage gets a line of its own, so a log of a batch
    run shows the same thing a person saw; on a terminal a live bar sits under those lines.
    """

    def __init__(self, console: Console, total_steps: int):
        self.console = console
        self.total_steps = total_steps
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> "TurnProgress":
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold cyan]{task.description:>8}"),
                BarColumn(bar_width=30),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[eta]}"),
                console=self.console,
                transient=True,
            )
            self._task = self._progress.add_task("start", total=1.0, eta="")
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, ev: ProgressEvent) -> None:
        with self._lock:
            if self._progress is not None and self._task is not None:
                eta = f"eta {ev.eta_s:.1f}s" if ev.eta_s is not None else ""
                self._progress.update(self._task, completed=ev.fraction, description=ev.stage, eta=eta)
            if ev.stage == "denoise" and ev.status == "step":
                total = ev.total_steps or self.total_steps
                filled = int(round(20 * ev.step / total)) if total else 20
                bar = "━" * filled + "[dim]" + "━" * (20 - filled) + "[/]"
                eta = f"  eta {ev.eta_s:.1f}s" if ev.eta_s is not None else ""
                note = f"  [dim]{escape(ev.message)}[/]" if ev.message else ""
                self.console.print(
                    f"  [cyan]step {ev.step}/{total}[/] {bar} {ev.elapsed_s:6.2f}s{eta}{note}", highlight=False
                )
            elif ev.status == "end" and ev.stage != "denoise":
                self.console.print(f"  [dim]{ev.stage:<8} {ev.stage_s:6.2f}s[/]", highlight=False)


def format_timings(result: TurnResult) -> str:
    """``encode 0.12s · denoise 1.40s (4 × 0.35s) · decode 0.30s · write 0.05s · total 1.9s``."""
    t = dict(result.timings)
    parts = []
    for stage in STAGES:
        if stage not in t:
            continue
        text = f"{stage} {t[stage]:.2f}s"
        if stage == "denoise":
            steps = [v for k, v in t.items() if k.startswith("denoise.step")]
            if steps:
                text += f" ({len(steps)} × {sum(steps) / len(steps):.2f}s)"
        parts.append(text)
    parts.append(f"total {result.total_s:.2f}s")
    return " · ".join(parts)
