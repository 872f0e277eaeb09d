"""``turbo-tui generate``: one turn from the command line, then exit."""

from __future__ import annotations

import argparse
import tempfile
from typing import Mapping

from rich.console import Console

from engine.api import ProgressEvent, open_engine
from turbo_tui.config import Settings
from turbo_tui.outputs import deliver


def format_timings(timings: Mapping[str, float], total_s: float) -> str:
    parts = [f"{k} {v:.2f}s" for k, v in timings.items() if not k.startswith("denoise.step")]
    return ", ".join(parts) + f"; total {total_s:.2f}s"


def progress_printer(console: Console):
    def show(ev: ProgressEvent) -> None:
        if ev.stage == "denoise" and ev.status == "step":
            eta = f", eta {ev.eta_s:.1f}s" if ev.eta_s is not None else ""
            console.print(f"  [cyan]denoise[/] step {ev.step}/{ev.total_steps}  {ev.elapsed_s:.2f}s{eta}")
        elif ev.status == "end":
            console.print(f"  [green]{ev.stage}[/] done in {ev.stage_s:.2f}s")
    return show


def run_generate(settings: Settings, args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    # Validate everything before loading anything.
    request = settings.default_turn(args.prompt).validate()
    session = None
    if not args.no_session:
        from sessions import SessionStore

        session = SessionStore(settings.sessions_root).open_or_create(args.session or "default")
    console.print(f"[bold]loading[/] {settings.launch.model} ({settings.launch.attention})")
    engine = open_engine(settings.launch)
    try:
        info = engine.info()
        console.print(f"[bold]generating[/] on {info.device} ({info.dtype})")
        if session is not None:
            from sessions.replay import run_turn

            turn_id = run_turn(session, request, engine, on_progress=progress_printer(console))
            result_paths = list(session.get(turn_id).video_paths)
            paths = deliver(result_paths, args.out, move=False) if args.out else result_paths
        else:
            result = engine.generate(request, tempfile.mkdtemp(prefix="turbo-tui-"), progress_printer(console))
            paths = deliver(list(result.video_paths), args.out or ".", move=True)
        for p in paths:
            print(p)
        if session is not None:
            rec = session.get(turn_id)
            where = f" (turn {turn_id} in session '{session.name}')"
            timings, total = rec.timings, rec.total_s or 0.0
        else:
            where, timings, total = "", result.timings, result.total_s
        console.print(f"[bold green]done[/] {format_timings(timings, total)}{where}")
        return 0
    finally:
        engine.close()
        if session is not None:
            session.close()
