"""Completion for slash commands, parameter names and values, turn numbers and session names."""

from __future__ import annotations

from typing import Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from turbo_tui.repl.commands import COMMANDS, UsageError, resolve_command
from turbo_tui.repl.fields import ALIASES, FIELD_SPECS, SETTABLE, resolve_field, show_value
from turbo_tui.repl.state import ReplState
from engine.errors import TurboError


class ReplCompleter(Completer):
    def __init__(self, state: ReplState):
        self.state = state
        self._paths = PathCompleter(expanduser=True)
        self._images = PathCompleter(
            expanduser=True,
            file_filter=lambda name: name.lower().endswith((".png", ".jpg", ".jpeg", ".webp")) or "." not in name[-6:],
        )

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/") or "\n" in text:
            return
        words = text.split(" ")
        if len(words) == 1:  # the command itself
            for name, cmd in COMMANDS.items():
                if name.startswith(text.lower()):
                    yield Completion(name, -len(text), display_meta=cmd.help)
            return
        try:
            cmd = resolve_command(words[0])
        except UsageError:
            return
        arg = text[len(words[0]) + 1:]
        if cmd.arg == "param":
            yield from self._set(arg, document, complete_event)
        elif cmd.arg == "turn" and len(words) == 2:
            yield from self._turns(words[1])
        elif cmd.arg == "session" and len(words) == 2:
            for name in self._session_names():
                if name.startswith(words[1]):
                    yield Completion(name, -len(words[1]))
        elif cmd.arg == "onoff" and len(words) == 2:
            for v in ("on", "off"):
                if v.startswith(words[1]):
                    yield Completion(v, -len(words[1]))
        elif cmd.arg == "path":
            yield from self._paths.get_completions(Document(arg), complete_event)

    def _set(self, arg: str, document: Document, event: CompleteEvent) -> Iterable[Completion]:
        name, sep, value = arg.partition(" ")
        if not sep:
            for field in SETTABLE:
                if field.startswith(name.lower()):
                    yield Completion(field, -len(name), display_meta=FIELD_SPECS[field].rule)
            for alias, field in ALIASES.items():
                if alias.startswith(name.lower()) and not field.startswith(name.lower()):
                    yield Completion(alias, -len(name), display_meta=f"= {field}")
            return
        try:
            field = resolve_field(name)
        except TurboError:
            return
        if field == "image_path" and value.lower() not in ("n", "no", "non", "none"):
            yield from self._images.get_completions(Document(value), event)
        current = show_value(field, getattr(self.state.request, field), self.state.request)
        for v in FIELD_SPECS[field].suggestions:
            if v.startswith(value) and " " not in value:
                yield Completion(v, -len(value), display_meta="current" if current.split(" ")[0] == v else None)

    def _turns(self, prefix: str) -> Iterable[Completion]:
        try:
            turns = self.state.session.turns()
        except TurboError:
            return
        for t in reversed(turns):
            n = str(t.number)
            if n.startswith(prefix):
                yield Completion(n, -len(prefix), display_meta=t.prompt[:50])

    def _session_names(self) -> list[str]:
        try:
            return self.state.session.names()
        except TurboError:
            return []
