"""``turbo-tui repl``: a prompt-toolkit line interface to the resident engine and the sessions.

A strict superset of the reference TurboDiffusion terminal server: ``/help``, ``/show``,
``/set``, ``/reset``, ``/quit``, prompts continued with a trailing ``\\``, questions for the
I2V image and the output path; plus session commands (``/history``, ``/replay``, ``/fork``,
``/star``, ``/export``, ``/session``, ``/open``) and a batch mode for scripts.

The package is split as the style guide asks: :mod:`.state` (the one shared object),
:mod:`.commands`, :mod:`.keys` and :mod:`.loop`; :mod:`.turns` runs a turn and
:mod:`.sessionlink` is the REPL's view of the session store.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.markup import escape

from engine.api import Engine, example_prompt
from engine.errors import TurboError
from turbo_tui.config import Settings

__all__ = ["run_repl"]


def run_repl(
    settings: Settings,
    session_name: str | None = None,
    batch: str | None = None,
    *,
    input=None,  # prompt_toolkit Input (tests: create_pipe_input())
    output=None,  # prompt_toolkit Output (tests: DummyOutput())
    console: Console | None = None,
    engine: Engine | None = None,  # an already open engine to use (not closed here)
    history_path: str | Path | None = None,
    ask_paths: bool | None = None,
    opener: Callable[[str], None] | None = None,
    preload: bool | None = None,
) -> int:
    """Run the REPL; return the exit status.

    Batch mode runs when ``batch`` names a file (``-`` is stdin) or when stdin is not a
    terminal and no ``input`` is given; it exits 1 if any turn or command failed.
    ``preload`` (default: interactive only) starts loading the models before the first
    turn, so they load while the first prompt is typed.
    """
    from turbo_tui.repl.loop import run_batch, run_interactive
    from turbo_tui.repl.sessionlink import SessionLink
    from turbo_tui.repl.state import EngineHandle, ReplState, default_history_path, system_open

    console = console or Console(highlight=False, soft_wrap=True)  # a log line stays one line
    lines = None
    if batch is not None:
        try:
            lines = sys.stdin.read().splitlines() if batch == "-" else \
                Path(batch).expanduser().read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            console.print(f"[bold red]error:[/] {escape(str(batch))}: cannot read the batch file "
                          f"({escape(e.strerror or str(e)) if isinstance(e, OSError) else escape(str(e))})",
                          soft_wrap=True)
            return 2
    elif input is None and not sys.stdin.isatty():
        lines = sys.stdin.read().splitlines()
    interactive = lines is None

    try:
        link = SessionLink.open(settings.sessions_root, session_name or "default")
    except TurboError as e:
        console.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True)
        return 2
    state = ReplState(
        settings=settings,
        console=console,
        engine=EngineHandle(settings.launch, engine=engine),
        session=link,
        request=settings.default_turn(),
        interactive=interactive,
        ask_paths=interactive if ask_paths is None else ask_paths,
        opener=opener or system_open,
        history_path=Path(history_path) if history_path is not None else default_history_path(),
    )
    launch = settings.launch
    console.print(
        f"[bold]turbo-tui repl[/] · model {escape(launch.model)} ({escape(launch.attention)}"
        f"{', int8' if launch.quant_linear else ''}) on {escape(launch.device)} · session "
        f"{escape(link.name)} ({len(link.turns())} turns)"
        + (" · /help lists the commands" if interactive else ""),
        highlight=False,
    )
    if interactive:
        console.print(f"[dim]try: {escape(example_prompt(launch.model))}[/]", highlight=False)
    if interactive if preload is None else preload:
        state.engine.start()  # load while the first prompt is typed
    try:
        if interactive:
            with ctrl_c_raises():
                return run_interactive(state, input=input, output=output)
        return run_batch(state, lines or [])
    finally:
        state.engine.close()
        link.close()


@contextlib.contextmanager
def ctrl_c_raises():
    """Ctrl-C cancels the running turn through KeyboardInterrupt, so the interactive REPL owns
    SIGINT while it runs: a process started in the background by a non-interactive shell (a
    script, some CI runners) inherits SIGINT as ignored, and Python then never raises it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (and receives the signal)
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
