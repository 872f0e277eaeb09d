"""``turbo-tui generate``: one turn from the command line, then exit."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from engine.api import ProgressEvent, TurnResult, open_engine
from turbo_tui.config import Settings


def format_timings(result: TurnResult) -> str:
    parts = [f"{k} {v:.2f}s" for k, v in result.timings.items() if not k.startswith("denoise.step")]
    return ", ".join(parts) + f"; total {result.total_s:.2f}s"


def progress_printer(console: Console):
    def show(ev: ProgressEvent) -> None:
        if ev.stage == "denoise" and ev.status == "step":
            eta = f", eta {ev.eta_s:.1f}s" if ev.eta_s is not None else ""
            console.print(f"  [cyan]denoise[/] step {ev.step}/{ev.total_steps}  {ev.elapsed_s:.2f}s{eta}")
        elif ev.status == "end":
            console.print(f"  [green]{ev.stage}[/] done in {ev.stage_s:.2f}s")
    return show


def deliver(paths: list[str], out: str, move: bool) -> list[str]:
    """Copy (or move) written videos to ``out``: a .mp4 path (samples get -1, -2 ...) or a folder."""
    target = Path(os.path.expanduser(out))
    placed = []
    for n, src in enumerate(paths):
        if target.suffix.lower() == ".mp4":
            dst = target if n == 0 else target.with_name(f"{target.stem}-{n}{target.suffix}")
        else:
            dst = target / Path(src).name
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.move if move else shutil.copy2)(src, dst)
        placed.append(str(dst))
    return placed


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
            turn_id = session.begin_turn(request.to_dict(), dataclasses.asdict(info))
            out_dir = session.output_dir_for(turn_id)
        else:
            turn_id, out_dir = None, tempfile.mkdtemp(prefix="turbo-tui-")
        try:
            result = engine.generate(request, str(out_dir), progress_printer(console))
        except BaseException as e:
            if session is not None:
                from engine.errors import Cancelled

                status = "cancelled" if isinstance(e, (Cancelled, KeyboardInterrupt)) else "failed"
                session.fail_turn(turn_id, str(e) or type(e).__name__, status=status)
            raise
        paths = list(result.video_paths)
        if session is not None:
            session.finish_turn(turn_id, result)
            if args.out:  # the session keeps its copy; the user gets their own at --out
                paths = deliver(paths, args.out, move=False)
        else:
            paths = deliver(paths, args.out or ".", move=True)
        for p in paths:
            print(p)
        console.print(f"[bold green]done[/] {format_timings(result)}")
        return 0
    finally:
        engine.close()
