"""Running one turn: record it, generate on a worker thread, show progress, record the result.

The engine runs on a worker thread so that Ctrl-C reaches the main thread at once; the main
thread then asks the engine to cancel, and the turn ends with "cancelled" between two steps
while the session (and the loaded models) stay.
"""

from __future__ import annotations

import threading
from typing import Any

from rich.markup import escape

from engine.api import TurnRequest, TurnResult
from engine.errors import Cancelled, TurboError
from turbo_tui.outputs import deliver
from turbo_tui.repl.fields import show_value
from turbo_tui.repl.progress import TurnProgress, format_timings
from turbo_tui.repl.state import ReplState


def _generate(state: ReplState, request: TurnRequest, out_dir: str) -> TurnResult:
    """engine.generate on a worker thread; Ctrl-C here cancels the turn, not the REPL."""
    engine = state.engine.get()  # waits for the background load
    box: dict[str, Any] = {}
    with TurnProgress(state.console, request.num_steps) as progress:

        done = threading.Event()

        def work() -> None:
            try:
                box["result"] = engine.generate(request, out_dir, progress)
            except BaseException as e:  # handed to the main thread as is
                box["error"] = e
            finally:
                done.set()

        worker = threading.Thread(target=work, name="turbo-turn", daemon=True)
        cancelled = started = False

        def cancel_once() -> None:
            nonlocal cancelled
            if not cancelled:
                cancelled = True
                state.console.print("[yellow]cancelling… (the turn stops before its next step)[/]")
                engine.cancel()

        def wait() -> None:
            nonlocal started
            # Wait on an Event, not Thread.join: on Python 3.11 a KeyboardInterrupt inside join()
            # can mark a still-running thread as stopped.
            while not done.is_set():
                try:
                    if not started:
                        started = True
                        worker.start()
                    done.wait(0.1)
                except KeyboardInterrupt:
                    cancel_once()

        # Ctrl-C means "cancel the turn" wherever it lands from here to the turn's end -- also
        # between two waits, where the inner handler does not reach (the outer one does).
        while True:
            try:
                wait()
                break
            except KeyboardInterrupt:
                cancel_once()
    if "error" in box:
        raise box["error"]
    if cancelled:  # finished before the cancel took effect; keep the result but say so
        state.console.print("[yellow]the turn finished before it could be cancelled[/]")
    return box["result"]


def run_turn(state: ReplState, request: TurnRequest, *, parent: Any = None, kind: str = "new",
             output_path: str | None = None) -> int | None:
    """Run and record one turn.  Prints one error line on failure; returns the turn number or None."""
    try:
        request = request.validate()
    except TurboError as e:
        state.error(str(e))
        return None
    con = state.console
    con.print(
        f"[bold]turn[/] {escape(request.prompt[:70])}{'…' if len(request.prompt) > 70 else ''}  "
        f"[dim]seed {request.seed} · {request.num_steps} steps · {request.num_frames}f · "
        f"{request.resolution} {request.aspect_ratio} · top-k {request.sla_topk:g} · "
        f"σ {escape(show_value('sigma_max', request.sigma_max, request))}[/]",
        highlight=False,
    )
    if not state.engine.ready:
        con.print(f"[dim]loading {escape(state.launch.model)} ({escape(state.launch.attention)})…[/]",
                  highlight=False)
    record = None
    try:
        engine = state.engine.get()
        record = state.session.begin(request, state.launch, engine.info(), parent=parent, kind=kind)
        result = _generate(state, request, record.output_dir)
    except (Exception, KeyboardInterrupt) as e:  # per turn: record it, say one line, go on
        cancelled = isinstance(e, (Cancelled, KeyboardInterrupt))
        msg = "turn cancelled" if cancelled else (str(e) if isinstance(e, TurboError) else f"{type(e).__name__}: {e}")
        if record is not None:
            state.session.fail(record, msg, cancelled=cancelled)
        if cancelled:
            state.failures += 1
            con.print("[yellow]turn cancelled[/]" + (f" (turn {record.number})" if record is not None else ""))
        else:
            state.error(msg)
        return None
    state.session.finish(record, result)
    state.turns_run += 1
    con.print(f"[green]✓[/] turn {record.number} · {format_timings(result)}", highlight=False)
    for p in result.video_paths:
        con.print(f"  saved {escape(p)}", highlight=False, soft_wrap=True)
    if output_path:
        try:
            for p in deliver(result.video_paths, output_path):
                con.print(f"  copied to {escape(p)}", highlight=False, soft_wrap=True)
        except TurboError as e:
            state.error(str(e))
    return record.number
