"""The read-eval loop: interactive through prompt-toolkit, or batch over the lines of a file.

Both feed :func:`handle_line`: a line starting with ``/`` is a command, anything else is a
prompt and runs a turn with the current parameters.  Errors print one line and the loop
goes on; in batch mode they make the exit status non-zero.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import PathCompleter
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output
from rich.markup import escape

from engine.errors import TurboError
from turbo_tui.repl.commands import run_command
from turbo_tui.repl.completion import ReplCompleter
from turbo_tui.repl.fields import parse_setting, show_value
from turbo_tui.repl.keys import build_key_bindings
from turbo_tui.repl.state import ReplState
from turbo_tui.repl.turns import run_turn

# Asks a question and returns the answer (interactive mode only).
Ask = Callable[[str, str], str]


def prompt_text(raw: str) -> str:
    """The lines of a (continued) prompt joined by single spaces."""
    return " ".join(part.strip() for part in raw.splitlines() if part.strip())


def logical_lines(lines: Iterable[str]) -> Iterator[str]:
    """Batch input: join lines ending in ``\\`` with the next; drop blank lines and ``#`` comments."""
    pending: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending.append(line.rstrip()[:-1])
            continue
        pending.append(line)
        yield "\n".join(pending)
        pending = []
    if pending:
        yield "\n".join(pending)


def handle_line(state: ReplState, text: str, ask: Ask | None = None) -> None:
    """One command or one prompt.  Never raises TurboError: it prints one line instead."""
    stripped = text.strip()
    if not stripped:
        return
    try:
        if stripped.startswith("/"):
            run_command(state, prompt_text(stripped))
            return
        request = state.request.replace(prompt=prompt_text(stripped))
        output_path = None
        if ask is not None and state.ask_paths:
            if state.launch.is_i2v:
                now = show_value("image_path", request.image_path)
                answer = ask("image path", now)
                if answer.strip():
                    field, value = parse_setting("image_path", answer)
                    state.set_param(field, value)
                    request = request.replace(image_path=value)
            output_path = ask("output path", "the session folder").strip() or None
        parent, kind = state.fork_parent, ("fork" if state.fork_parent is not None else "new")
        state.fork_parent = None
        run_turn(state, request, parent=parent, kind=kind, output_path=output_path)
    except TurboError as e:
        state.error(str(e))


# ---------------------------------------------------------------------------
# Interactive


def toolbar(state: ReplState) -> str:
    r = state.request
    engine = "ready" if state.engine.ready else "loading…"
    parts = [
        f"session {state.session.name}", f"{r.resolution} {r.aspect_ratio}", f"{r.num_frames}f",
        f"{r.num_steps} steps", f"seed {r.seed}", f"top-k {r.sla_topk:g}",
        f"σ {show_value('sigma_max', r.sigma_max, r)}",
    ]
    if r.ode:
        parts.append("ode")
    if r.image_path:
        parts.append(f"image {r.image_path}")
    parts.append(f"engine {engine}")
    return " · ".join(parts) + f"   F1 help · F2 paths {'on' if state.ask_paths else 'off'}"


def run_interactive(state: ReplState, *, input: Input | None = None, output: Output | None = None) -> int:
    history: History
    try:
        state.history_path.parent.mkdir(parents=True, exist_ok=True)
        history = FileHistory(str(state.history_path))
    except OSError as e:
        state.console.print(f"[yellow]history not saved: {escape(str(e))}[/]")
        history = InMemoryHistory()
    session: PromptSession[str] = PromptSession(
        history=history,
        completer=ReplCompleter(state),
        complete_while_typing=False,
        auto_suggest=AutoSuggestFromHistory(),
        key_bindings=build_key_bindings(state),
        prompt_continuation=lambda width, line_number, wrap_count: "… ".rjust(width),
        bottom_toolbar=lambda: toolbar(state),
        input=input,
        output=output,
    )
    questions: PromptSession[str] = PromptSession(
        history=InMemoryHistory(), completer=PathCompleter(expanduser=True), input=input, output=output
    )

    def ask(what: str, default_note: str) -> str:
        return questions.prompt(f"{what} [Enter: {default_note}]: ")

    while not state.quit:
        try:
            text = session.prompt(f"{state.session.name} › ", default=state.take_prefill())
        except KeyboardInterrupt:  # Ctrl-C at the prompt clears the line
            continue
        except EOFError:  # Ctrl-D, or the end of piped input
            break
        try:
            handle_line(state, text, ask)
        except KeyboardInterrupt:  # Ctrl-C in a path question: skip this turn
            state.console.print("[yellow]turn skipped[/]")
        except EOFError:
            break
    return 0


# ---------------------------------------------------------------------------
# Batch


def run_batch(state: ReplState, lines: Iterable[str]) -> int:
    """Each logical line is a command or a turn; exit status 1 if anything failed."""
    for text in logical_lines(lines):
        if state.quit:
            break
        state.console.print(f"[bold]›[/] {escape(prompt_text(text))}", highlight=False)
        try:
            handle_line(state, text, ask=None)
        except KeyboardInterrupt:
            state.console.print("[yellow]interrupted[/]")
            state.failures += 1
            break
    ok = state.failures == 0
    state.console.print(
        f"{state.turns_run} turn{'s' if state.turns_run != 1 else ''} done"
        + ("" if ok else f", {state.failures} failed"),
        highlight=False,
    )
    return 0 if ok else 1
