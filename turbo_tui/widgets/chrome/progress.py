"""The progress line: stage name, a bar that advances per sampling step, elapsed time and ETA."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar

from engine.api import ProgressEvent
from turbo_tui.params import format_seconds


class TurnProgress(Horizontal):
    DEFAULT_CSS = """
    TurnProgress { height: 1; }
    TurnProgress #progress-stage { width: 24; color: $primary; }
    TurnProgress ProgressBar { width: 1fr; }
    TurnProgress ProgressBar Bar { width: 1fr; }
    TurnProgress #progress-time { width: auto; min-width: 24; color: $foreground 70%; padding-left: 1; }
    """

    def compose(self) -> ComposeResult:
        yield Label("idle", id="progress-stage")
        yield ProgressBar(total=100, show_eta=False, show_percentage=True, id="progress-bar")
        yield Label("", id="progress-time")

    def _set(self, stage: str, percent: float, times: str) -> None:
        self.query_one("#progress-stage", Label).update(stage)
        self.query_one(ProgressBar).update(progress=percent)
        self.query_one("#progress-time", Label).update(times)

    def start(self, what: str = "starting") -> None:
        self._set(what, 0, "")

    def advance(self, event: ProgressEvent) -> None:
        if event.stage == "denoise" and event.total_steps:
            stage = f"denoise step {event.step}/{event.total_steps}"
        else:
            stage = f"{event.stage} {event.status}" if event.status != "step" else event.stage
        times = f"{format_seconds(event.elapsed_s)} elapsed"
        if event.eta_s is not None:
            times += f" · ETA {format_seconds(event.eta_s)}"
        self._set(stage, 100 * event.fraction, times)

    def finish(self, total_s: float) -> None:
        self._set("done", 100, f"{format_seconds(total_s)} total")

    def stop(self, what: str) -> None:
        self.query_one("#progress-stage", Label).update(what)
        self.query_one("#progress-time", Label).update("")
