"""``turbo-tui sessions``: list, show, export, import, replay and delete sessions."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from engine.errors import SessionError
from turbo_tui.config import Settings

_STATUS_STYLE = {"done": "green", "running": "cyan", "failed": "red", "cancelled": "yellow", "interrupted": "red"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="turbo-tui sessions", description="Manage the recorded sessions.")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="every session, with its turn count and size")
    s = sub.add_parser("show", help="a session's turns, or one turn in full")
    s.add_argument("name")
    s.add_argument("turn", nargs="?", type=int, help="turn number to show in full")
    s.add_argument("--filter", metavar="TEXT", help="only turns whose prompt or note contains TEXT")
    s.add_argument("--starred", action="store_true", help="only starred turns")
    e = sub.add_parser("export", help="videos, manifest and an HTML gallery, to a folder or .zip")
    e.add_argument("name")
    e.add_argument("out", help="folder to create, or a .zip file")
    e.add_argument("--turns", metavar="LIST", help="turn numbers, e.g. 1,3,5-7 (default: all)")
    e.add_argument("--zip", action="store_true", help="write a .zip (also when OUT ends in .zip)")
    e.add_argument("--reel", action="store_true", help="also join the chosen turns into reel.mp4")
    i = sub.add_parser("import", help="import an exported .zip as a new session")
    i.add_argument("zip")
    i.add_argument("--name", help="name of the new session (default: the exported name)")
    r = sub.add_parser("replay", help="re-run a turn with exactly its parameters and compare the videos")
    r.add_argument("name")
    r.add_argument("turn", type=int)
    d = sub.add_parser("delete", help="delete a session and its files")
    d.add_argument("name")
    d.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return p


def run_sessions(settings: Settings, argv: Sequence[str], console: Console | None = None) -> int:
    """Entry point from turbo_tui.cli; returns the exit status (SessionError propagates to it)."""
    args_list = list(argv)
    if args_list[:1] == ["--"]:
        args_list = args_list[1:]
    parser = build_parser()
    if not args_list or args_list[0] == "help":  # `turbo-tui sessions --help` is taken by the outer parser
        parser.print_help()
        return 0 if args_list else 2
    try:
        args = parser.parse_args(args_list)
    except SystemExit as e:  # --help, or a usage error already printed by argparse
        return int(e.code or 0)
    from sessions import SessionStore

    console = console or Console()
    store = SessionStore(settings.sessions_root)
    action = {"list": _list, "show": _show, "export": _export, "import": _import,
              "replay": _replay, "delete": _delete}[args.action]
    return action(store, args, console, settings)


def parse_turns(text: str) -> list[int]:
    """``"1,3,5-7"`` -> ``[1, 3, 5, 6, 7]``."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                if b < a or b - a > 100_000:
                    raise ValueError
                out.extend(range(a, b + 1))
            elif part:
                out.append(int(part))
        except ValueError:
            raise SessionError(f"--turns {text!r}: expected turn numbers like 1,3,5-7") from None
    if not out:
        raise SessionError(f"--turns {text!r}: no turn numbers given")
    return out


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _when(iso: str | None) -> str:
    return iso.replace("T", " ")[:19] if iso else "—"


def _status(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _list(store, args, console: Console, settings: Settings) -> int:
    infos = store.list()
    if not infos:
        console.print(f"No sessions in {escape(str(store.root))}.")
        return 0
    t = Table(title=escape(f"Sessions in {store.root}"), title_justify="left")
    for col, kw in (("name", {"style": "bold"}), ("turns", {"justify": "right"}), ("done", {"justify": "right"}),
                    ("last turn", {"no_wrap": True}), ("created", {"no_wrap": True}),
                    ("size", {"justify": "right", "no_wrap": True}), ("", {})):
        t.add_column(col, **kw)
    for i in infos:
        state = Text(i.problem, style="red") if i.problem else Text("in use" if i.in_use else "", style="cyan")
        t.add_row(i.name, str(i.turns), str(i.done), _when(i.last_turn_at), _when(i.created_at), _size(i.size_bytes),
                  state)
    console.print(t)
    return 0


def _show(store, args, console: Console, settings: Settings) -> int:
    with store.open_for_reading(args.name) as s:
        if args.turn is not None:
            _show_turn(s, s.get(args.turn), console)
            return 0
        turns = s.turns(filter_text=args.filter, starred=True if args.starred else None)
        t = Table(title=f"Session {s.name} — {len(turns)} turns", title_justify="left")
        for col, kw in (("#", {"justify": "right"}), ("", {}), ("status", {}), ("prompt", {"ratio": 1}),
                        ("seed", {"justify": "right"}), ("steps", {"justify": "right"}), ("size", {}),
                        ("time", {"justify": "right"}), ("from", {})):
            t.add_column(col, **kw)
        for r in turns:
            req = r.request
            size = f"{r.width}×{r.height}×{r.num_frames}" if r.width else f"{req.get('resolution')} {req.get('num_frames')}f"
            origin = f"{r.kind} of {r.parent_id}" if r.parent_id is not None else ""
            if r.replay_match is not None:
                origin += " ✓" if r.replay_match else " ✗"
            t.add_row(str(r.id), "★" if r.starred else "", _status(r.status), Text(r.prompt), str(req.get("seed")),
                      str(req.get("num_steps")), size, f"{r.total_s:.1f}s" if r.total_s is not None else "—", origin)
        console.print(t)
    return 0


def _show_turn(s, r, console: Console) -> None:
    t = Table(title=f"Session {s.name}, turn {r.id}", title_justify="left", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    t.add_row("status", _status(r.status))
    if r.error:
        t.add_row("error", Text(r.error, style="red"))
    t.add_row("kind", r.kind + (f" of turn {r.parent_id}" if r.parent_id is not None else ""))
    if r.replay_match is not None:
        t.add_row("replay", "matches the original" if r.replay_match else "differs from the original")
    t.add_row("created", _when(r.created_at))
    t.add_row("starred", "yes" if r.starred else "no")
    if r.note:
        t.add_row("note", Text(r.note))
    for k, v in r.request.items():
        t.add_row(k, Text(str(v)))
    if r.input_image:
        t.add_row("input copy", Text(r.input_image.path))
    for k, v in r.launch.items():
        t.add_row(f"launch.{k}", Text(str(v)))
    if r.width:
        t.add_row("video size", f"{r.width}×{r.height}, {r.num_frames} frames")
    for k, v in r.timings.items():
        t.add_row(Text(f"time.{k}"), f"{v:.3f}s" if isinstance(v, (int, float)) else Text(str(v)))
    if r.total_s is not None:
        t.add_row("total", f"{r.total_s:.2f}s")
    if r.peak_memory_bytes:
        t.add_row("peak memory", _size(r.peak_memory_bytes))
    for v in r.videos:
        t.add_row("video", Text(v.path))
    console.print(t)


def _export(store, args, console: Console, settings: Settings) -> int:
    from sessions import export_session

    turns = parse_turns(args.turns) if args.turns else None
    with store.open_for_reading(args.name) as s:
        with console.status("exporting…"):
            out = export_session(s, args.out, turn_ids=turns, as_zip=True if args.zip else None, reel=args.reel)
    console.print(f"exported to [bold]{escape(str(out))}[/]")
    return 0


def _import(store, args, console: Console, settings: Settings) -> int:
    from sessions import import_session

    with import_session(store, args.zip, name=args.name) as s:
        console.print(f"imported [bold]{len(s)}[/] turns as session [bold]{s.name}[/]")
    return 0


def _replay(store, args, console: Console, settings: Settings) -> int:
    from engine.api import open_engine
    from sessions import replay_turn

    with store.open(args.name) as s:
        original = s.get(args.turn)
        was = original.launch.get("model")
        if was and was != settings.launch.model:
            console.print(f"[yellow]turn {original.id} was made with {escape(str(was))}; replaying with "
                          f"{settings.launch.model} (the video will likely differ)[/]")
        with console.status(f"loading {settings.launch.model}…"):
            engine = open_engine(settings.launch)
        try:
            with console.status(f"replaying turn {original.id}…"):
                new_id, matches = replay_turn(s, original.id, engine)
        finally:
            engine.close()
    verdict = "[green]the video matches[/]" if matches else "[red]the video differs[/]"
    console.print(f"turn {original.id} replayed as turn {new_id}: {verdict}")
    return 0 if matches else 1


def _delete(store, args, console: Console, settings: Settings) -> int:
    path = store.path_of(args.name)
    if not store.exists(args.name):
        raise SessionError(f"no session '{args.name}' in {store.root}")
    if not args.yes:
        if not sys.stdin.isatty():
            raise SessionError(f"deleting session '{args.name}' needs --yes when not run interactively")
        answer = console.input(f"Delete session [bold]{args.name}[/] and all its videos ({escape(str(path))})? "
                               "\\[y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            console.print("kept")
            return 1
    store.delete(args.name)
    console.print(f"deleted session [bold]{args.name}[/]")
    return 0
