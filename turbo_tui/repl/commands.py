"""Slash commands.  Each is a function of the REPL state and its argument text.

A command either prints and returns, or raises :class:`~engine.errors.TurboError` with a
one-line message; the loop prints that line and goes on.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from typing import Callable

from rich.markup import escape
from rich.table import Table

from engine.api import LaunchConfig
from engine.errors import TurboError
from turbo_tui.repl.fields import ALIASES, FIELD_SPECS, SETTABLE, parse_setting, resolve_field, show_value
from turbo_tui.repl.state import ReplState


class UsageError(TurboError):
    """A slash command was misspelt or given the wrong arguments."""


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    help: str
    run: Callable[[ReplState, str], None]
    arg: str = ""  # what completion offers for the argument: param | turn | session | path | onoff


COMMANDS: dict[str, Command] = {}
COMMAND_ALIASES = {"/exit": "/quit", "/q": "/quit", "/h": "/help", "/?": "/help", "/ls": "/history"}


def command(name: str, usage: str, help: str, arg: str = "") -> Callable:
    def register(fn: Callable[[ReplState, str], None]) -> Callable[[ReplState, str], None]:
        COMMANDS[name] = Command(name, usage, help, fn, arg)
        return fn

    return register


def resolve_command(word: str) -> Command:
    name = COMMAND_ALIASES.get(word.lower(), word.lower())
    if name not in COMMANDS:
        raise UsageError(f"unknown command {word} (type /help for the list)")
    return COMMANDS[name]


def run_command(state: ReplState, line: str) -> None:
    """Run one ``/command args`` line."""
    word, _, rest = line.strip().partition(" ")
    resolve_command(word).run(state, rest.strip())


def _turn_number(arg: str, usage: str) -> int:
    try:
        n = int(arg.strip().lstrip("#"))
    except ValueError:
        raise UsageError(f"usage: {usage} (N is a turn number from /history)") from None
    if n < 1:
        raise UsageError(f"turn numbers start at 1, got {n}")
    return n


# ---------------------------------------------------------------------------
# Parameters


@command("/help", "/help [COMMAND | set]", "list the commands, or explain one (/help set lists the parameters)")
def cmd_help(state: ReplState, arg: str) -> None:
    con = state.console
    if arg.strip().lstrip("/") == "set":
        table = Table(title="/set PARAMETER VALUE", show_edge=False, title_justify="left")
        table.add_column("parameter", style="cyan", no_wrap=True)
        table.add_column("aliases", style="dim")
        table.add_column("allowed")
        for name in SETTABLE:
            aliases = ", ".join(a for a, f in ALIASES.items() if f == name)
            table.add_row(name, aliases, FIELD_SPECS[name].rule)
        con.print(table)
        return
    if arg:
        cmd = resolve_command(arg if arg.startswith("/") else "/" + arg)
        con.print(f"[cyan]{escape(cmd.usage)}[/]  {escape(cmd.help)}", highlight=False)
        return
    table = Table(show_header=False, show_edge=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="cyan", no_wrap=True)
    table.add_column()
    for cmd in COMMANDS.values():
        table.add_row(escape(cmd.usage), escape(cmd.help))
    con.print(table)
    con.print(
        "Anything else is a prompt and runs a turn.  End a line with \\ to continue the prompt on the "
        "next line.  Ctrl-C cancels the running turn; Ctrl-D or /quit leaves.",
        highlight=False, markup=False,
    )


@command("/show", "/show", "launch and per-turn configuration (* marks values changed from the defaults)")
def cmd_show(state: ReplState, arg: str) -> None:
    con = state.console
    launch, base = state.launch, LaunchConfig()
    con.print("[bold]launch[/] [dim](fixed while the engine is loaded)[/]")
    table = Table(show_edge=False)
    table.add_column(" ", width=1, style="yellow")
    table.add_column("setting", style="cyan", no_wrap=True)
    table.add_column("value")
    for f in dataclasses.fields(LaunchConfig):
        value, default = getattr(launch, f.name), getattr(base, f.name)
        if value is None and default is None:
            continue
        table.add_row("*" if value != default else "", f.name, escape(show_value(f.name, value)))
    con.print(table)

    req, defaults = state.request, state.defaults
    con.print(f"[bold]per turn[/] [dim](session {escape(state.session.name)}; * = changed from the default)[/]")
    table = Table(show_edge=False)
    table.add_column(" ", width=1, style="yellow")
    table.add_column("parameter", style="cyan", no_wrap=True)
    table.add_column("value")
    table.add_column("default", style="dim")
    for name in SETTABLE:
        value, default = getattr(req, name), getattr(defaults, name)
        table.add_row(
            "*" if value != default else "", name, escape(show_value(name, value, req)),
            escape(show_value(name, default, req)),
        )
    con.print(table)
    extra = []
    if state.fork_parent is not None:
        extra.append(f"the next prompt forks turn {state.fork_parent}")
    extra.append(f"path questions {'on' if state.ask_paths else 'off'} (/paths)")
    con.print("; ".join(extra), style="dim", highlight=False)


@command("/set", "/set PARAMETER VALUE", "change a per-turn parameter (see /help set)", arg="param")
def cmd_set(state: ReplState, arg: str) -> None:
    name, _, text = arg.strip().partition(" ")
    if not name:
        raise UsageError("usage: /set PARAMETER VALUE (parameters: " + ", ".join(SETTABLE) + ")")
    field = resolve_field(name)
    if not text.strip():
        raise UsageError(f"usage: /set {field} VALUE ({FIELD_SPECS[field].rule}); "
                         f"now {show_value(field, getattr(state.request, field), state.request)}")
    text = text.strip()
    if field == "image_path" and len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]  # a quoted path with spaces
    field, value = parse_setting(field, text)
    old = show_value(field, getattr(state.request, field), state.request)
    state.set_param(field, value)
    state.console.print(
        f"{field}: {escape(old)} → "
        f"[bold]{escape(show_value(field, value, state.request))}[/]",
        highlight=False,
    )
    if field == "image_path" and value and not state.launch.is_i2v:
        state.console.print(f"[dim]note: {escape(state.launch.model)} is text-to-video; turns with an image need "
                            "an I2V model (--model tiny-i2v or Wan2.2-A14B)[/]", highlight=False)


@command("/reset", "/reset", "per-turn parameters back to the defaults (config file and flags included)")
def cmd_reset(state: ReplState, arg: str) -> None:
    state.reset()
    state.console.print("parameters reset to the defaults", highlight=False)


@command("/paths", "/paths [on|off]", "ask for the I2V image and the output path after each prompt", arg="onoff")
def cmd_paths(state: ReplState, arg: str) -> None:
    low = arg.strip().lower()
    if low in ("", "toggle"):
        state.ask_paths = not state.ask_paths
    elif low in ("on", "off"):
        state.ask_paths = low == "on"
    else:
        raise UsageError("usage: /paths [on|off]")
    state.console.print(f"path questions {'on' if state.ask_paths else 'off'}", highlight=False)


@command("/quit", "/quit", "leave (the session is already saved)")
def cmd_quit(state: ReplState, arg: str) -> None:
    state.quit = True


# ---------------------------------------------------------------------------
# Session


@command("/history", "/history [N]", "the turns of this session (the last N, default 20)")
def cmd_history(state: ReplState, arg: str) -> None:
    limit = 20
    if arg.strip():
        try:
            limit = int(arg)
        except ValueError:
            raise UsageError("usage: /history [N]") from None
    turns = state.session.turns()
    con = state.console
    if not turns:
        con.print(f"session {escape(state.session.name)} has no turns yet", highlight=False)
        return
    table = Table(title=f"session {escape(state.session.name)}", show_edge=False, title_justify="left")
    table.add_column("#", justify="right", style="cyan")
    table.add_column("★", width=1, style="yellow")
    table.add_column("status")
    table.add_column("prompt", overflow="ellipsis", max_width=48, no_wrap=True)
    table.add_column("parameters", style="dim")
    table.add_column("time", justify="right")
    table.add_column("from", style="dim")
    for t in turns[-limit:]:
        status = {"done": "[green]done[/]", "failed": "[red]failed[/]"}.get(t.status, escape(t.status))
        table.add_row(
            str(t.number), "★" if t.starred else "", status, escape(t.prompt), escape(t.summary),
            f"{t.total_s:.1f}s" if t.total_s else "", escape(t.origin),
        )
    con.print(table)


@command("/replay", "/replay N", "run turn N again with exactly its parameters", arg="turn")
def cmd_replay(state: ReplState, arg: str) -> None:
    from turbo_tui.repl.turns import run_turn

    n = _turn_number(arg, "/replay N")
    t = state.session.turn(n)
    state.console.print(f"replaying turn {n}: {escape(t.prompt)}", highlight=False)
    new = run_turn(state, t.request, parent=t.id, kind="replay")
    if new is not None and t.status == "done":
        if state.session.check_replay(t.id, new):
            state.console.print(f"turn {new} matches turn {n} frame for frame", highlight=False)
        else:
            state.console.print(f"[yellow]turn {new} differs from turn {n}[/] (different pixels: another "
                                "device, dtype or launch setting?)", highlight=False)


@command("/fork", "/fork N", "take turn N's prompt and parameters as the next turn's start", arg="turn")
def cmd_fork(state: ReplState, arg: str) -> None:
    n = _turn_number(arg, "/fork N")
    t = state.session.turn(n)
    state.request = t.request.replace(prompt="")
    state.fork_parent = t.id
    state.prefill = t.prompt
    state.console.print(
        f"forked turn {n}: its parameters are current; edit the prompt and press Enter "
        f"(the new turn records turn {n} as its parent)",
        highlight=False,
    )
    if not state.interactive:
        state.console.print(f"prompt: {escape(t.prompt)}", highlight=False)


@command("/star", "/star N", "star or unstar turn N", arg="turn")
def cmd_star(state: ReplState, arg: str) -> None:
    n = _turn_number(arg, "/star N")
    starred = state.session.toggle_star(n)
    state.console.print(f"turn {n} {'starred ★' if starred else 'unstarred'}", highlight=False)


@command("/export", "/export PATH [reel]",
         "export this session to a new folder or .zip: manifest, gallery, videos (reel: one joined video)",
         arg="path")
def cmd_export(state: ReplState, arg: str) -> None:
    try:
        parts = shlex.split(arg)
    except ValueError as e:
        raise UsageError(f"usage: /export PATH [reel] ({e})") from None
    reel = len(parts) == 2 and parts[1].lower() == "reel"
    if len(parts) != 1 and not reel:
        raise UsageError("usage: /export PATH [reel]")
    written = state.session.export(parts[0], reel=reel)
    state.console.print(f"exported session {escape(state.session.name)} to {escape(str(written))}", highlight=False)


@command("/session", "/session [NAME]", "switch to session NAME (created if new); without NAME, list them",
         arg="session")
def cmd_session(state: ReplState, arg: str) -> None:
    name = arg.strip()
    con = state.console
    if not name:
        names = state.session.names()
        for s in names:
            mark = "*" if s == state.session.name else " "
            con.print(f"{mark} {escape(s)}", highlight=False)
        return
    created = state.session.switch(name)
    state.fork_parent = None
    con.print(f"{'created' if created else 'switched to'} session {escape(state.session.name)} "
              f"({len(state.session.turns())} turns)", highlight=False)


@command("/open", "/open [N]", "play turn N (default: the last) in the system player", arg="turn")
def cmd_open(state: ReplState, arg: str) -> None:
    if arg.strip():
        t = state.session.turn(_turn_number(arg, "/open N"))
    else:
        turns = [t for t in state.session.turns() if t.video_paths]
        if not turns:
            raise UsageError("no turn with a video yet")
        t = turns[-1]
    if not t.video_paths:
        raise UsageError(f"turn {t.number} has no video ({t.status})")
    for path in t.video_paths:
        state.opener(path)
        state.console.print(f"opening {escape(path)}", highlight=False)
