"""Every app action in one table: key bindings, footer entries and command palette hits.

The app builds its ``BINDINGS`` from :data:`ACTIONS` and :class:`ActionCommands`
offers each of them in the command palette (ctrl+p), so the three never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class AppAction:
    action: str  # the App's action_<name>
    title: str  # shown in the palette
    help: str
    keys: str = ""  # comma-separated Textual key names; "" for palette only
    footer: str = ""  # short footer label; "" hides it from the footer
    priority: bool = False  # fire even while a text field has focus


ACTIONS: tuple[AppAction, ...] = (
    AppAction("generate", "Generate", "Run a turn with the prompt and parameters shown",
              "f5,ctrl+g,ctrl+enter", "Generate", priority=True),
    AppAction("cancel", "Cancel turn", "Stop the running turn before its next step", "escape", "Cancel"),
    AppAction("fork", "Fork selected turn", "Load the selected turn's prompt and parameters to vary them",
              "ctrl+f", "Fork", priority=True),
    AppAction("replay", "Replay selected turn", "Run the selected turn again with the same seed and compare",
              "ctrl+r", "Replay", priority=True),
    AppAction("star", "Star / unstar selected turn", "Mark the selected turn as a favourite", "ctrl+s", "",
              priority=True),
    AppAction("delete_turn", "Delete selected turn", "Delete the selected turn and its files"),
    AppAction("open_video", "Open video in player", "Open the selected turn's mp4 with the system player",
              "ctrl+o", "Open", priority=True),
    AppAction("export", "Export session", "Write the session's videos, manifest and HTML gallery to a folder",
              "f8", ""),
    AppAction("randomise_seed", "Randomise seed", "Pick a new random seed", "ctrl+n", "", priority=True),
    AppAction("toggle_theme", "Toggle theme", "Switch between turbo-dark and turbo-light (remembered)",
              "ctrl+t", "Theme", priority=True),
    AppAction("focus('prompt')", "Focus prompt", "Move the cursor to the prompt editor", "f2", ""),
    AppAction("focus('params')", "Focus parameters", "Move to the parameter panel", "f3", ""),
    AppAction("focus('history-tree')", "Focus history", "Move to the history list", "f4", ""),
    AppAction("filter_history", "Filter history", "Type to narrow the history by prompt text", "ctrl+l", "",
              priority=True),
    AppAction("toggle_starred", "Show starred only", "Show only starred turns in the history (toggle)"),
    AppAction("play_pause", "Play / pause preview", "Pause or resume the looping preview", "f6", ""),
)


def bindings() -> list[Binding]:
    return [
        Binding(a.keys, a.action, a.footer or a.title, show=bool(a.footer), priority=a.priority)
        for a in ACTIONS if a.keys
    ]


def key_hint(a: AppAction) -> str:
    return a.keys.split(",")[0] if a.keys else ""


class ActionCommands(Provider):
    """The command palette's list of turbo-tui actions."""

    def _hits(self) -> list[tuple[str, str, str]]:
        out = []
        for a in ACTIONS:
            keys = key_hint(a)
            out.append((a.title, a.help + (f"  [{keys}]" if keys else ""), a.action))
        return out

    async def discover(self) -> Hits:
        for title, help_text, action in self._hits():
            yield DiscoveryHit(title, partial(self.app.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, action in self._hits():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self.app.run_action, action), help=help_text)
