"""The Textual app: wiring only.

Widgets live in :mod:`turbo_tui.widgets`, blocking work in :mod:`turbo_tui.runner`
(run in thread workers that report through :mod:`turbo_tui.messages`), actions and
their keys in :mod:`turbo_tui.palette`, colours in :mod:`themes`.  Importing this
module loads neither torch nor triton; the engine is opened in a worker.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from textual import on, work
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Button, Footer, Input, Label, TextArea

from engine.api import Engine, TurnRequest, example_prompt
from engine.errors import SessionError, TurboError, ValidationError
from themes import STYLESHEETS, THEMES
from turbo_tui import runner
from turbo_tui.config import Settings
from turbo_tui.messages import (
    EngineFailed,
    EngineLoading,
    EngineReady,
    ExportFailed,
    ExportFinished,
    GenerationFailed,
    GenerationFinished,
    GenerationProgress,
)
from turbo_tui.palette import ActionCommands, bindings
from turbo_tui.params import format_seconds
from turbo_tui.ui_state import UiState
from turbo_tui.widgets.chrome import EngineHeader, TurnProgress
from turbo_tui.widgets.history import HistoryView, TurnRow
from turbo_tui.widgets.panel import ParamPanel
from turbo_tui.widgets.preview import VideoPreview, open_in_player
from turbo_tui.widgets.prompt import PromptEditor


class TurboApp(App[int]):
    """Iterate prompts and parameters against one resident engine, turn after turn."""

    TITLE = "turbo-tui"
    CSS_PATH = [str(p) for p in STYLESHEETS]
    BINDINGS = bindings()
    COMMANDS = App.COMMANDS | {ActionCommands}

    busy: reactive[bool] = reactive(False)
    fork_parent: reactive[int | None] = reactive(None)

    def __init__(
        self,
        settings: Settings,
        session: Any,
        *,
        state_path: Path | None = None,
        graphics: str = "halfblock",
        opener: Callable[[str], str] = open_in_player,
        exports_dir: Path | None = None,
        engine: Engine | None = None,
    ) -> None:
        """``engine``: an engine already open (tests share one); None opens it in a worker."""
        super().__init__()
        self.settings = settings
        self.session = session  # sessions.store.Session, opened for writing
        self.engine: Engine | None = None
        self.engine_error: str | None = None  # why the engine failed to load, if it did
        self._given_engine = engine
        self.graphics = graphics
        self.opener = opener
        self.exports_dir = exports_dir or settings.sessions_root / "exports"
        self.ui_state = UiState.load(state_path)
        self.turn_done = threading.Event()  # set while no turn is running (run_app waits on it)
        self.turn_done.set()
        self._remember_theme = False
        self._replay_source: TurnRow | None = None

    # -- layout ------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield EngineHeader(id="header")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield PromptEditor(example=example_prompt(self.settings.launch.model))
                yield ParamPanel(self.settings.default_turn())
                with Horizontal(id="actions"):
                    yield Button("Generate  F5", id="generate", variant="primary", compact=True)
                    yield Button("Cancel  Esc", id="cancel", variant="error", compact=True, disabled=True)
                    yield Label("", id="fork-note")
            with Vertical(id="right"):
                yield VideoPreview(self.graphics)
                yield HistoryView()
        yield TurnProgress(id="progress")
        yield Footer()

    def on_mount(self) -> None:
        for theme in THEMES.values():
            self.register_theme(theme)
        wanted = self.ui_state.initial_theme(self.settings.theme)
        self.theme = wanted if wanted in self.available_themes else "turbo-dark"
        self._remember_theme = True
        header = self.query_one(EngineHeader)
        header.session = self.session.name
        if self.is_headless:  # Pilot and snapshot runs: no blinking cursors, so screens are stable
            for w in self.query(TextArea).results():
                w.cursor_blink = False
            for w in self.query(Input).results():
                w.cursor_blink = False
        self.refresh_history()
        self.query_one("#prompt", TextArea).focus()
        self.set_interval(2.0, self._poll_memory)
        if self._given_engine is not None:
            self.post_message(EngineReady(self._given_engine, self._given_engine.info(), 0.0))
        else:
            self._load_engine()

    # -- engine loading ------------------------------------------------------

    @work(thread=True, exclusive=True, group="engine", exit_on_error=False)
    def _load_engine(self) -> None:
        runner.load_engine(self.settings.launch, self.post_message)

    def on_engine_loading(self, message: EngineLoading) -> None:
        self.query_one(EngineHeader).state = "loading model…"
        text = message.event.message if message.event and message.event.message else "loading model…"
        self.query_one(TurnProgress).stop(text)

    def on_engine_ready(self, message: EngineReady) -> None:
        self.engine = message.engine
        header = self.query_one(EngineHeader)
        header.info = message.info
        header.state = "ready"
        self.query_one(TurnProgress).stop(f"model ready in {format_seconds(message.load_s)}")
        self._sync_buttons()

    def on_engine_failed(self, message: EngineFailed) -> None:
        self.engine_error = str(message.error)
        self.query_one(EngineHeader).state = "error"
        self.query_one(TurnProgress).stop("model failed to load")
        self.notify(str(message.error), title="Could not load the model", severity="error", timeout=30)

    def _poll_memory(self) -> None:
        # A timer: it can fire while the app is closing and the header is already gone.
        headers = self.query(EngineHeader)
        if self.engine is not None and headers:
            headers.first().memory = self.engine.memory_in_use()

    # -- turns -----------------------------------------------------------------

    def action_generate(self) -> None:
        if self.engine is None:
            if self.engine_error:
                self.notify(f"no model is loaded ({self.engine_error}); fix the checkpoint settings "
                            "and restart turbo-tui", severity="error", timeout=15)
            else:
                self.notify("the model is still loading; try again in a moment", severity="warning")
            return
        if self.busy:
            self.notify("a turn is already running (Esc cancels it)", severity="warning")
            return
        try:
            prompt = self.query_one(PromptEditor).check()
            request = self.query_one(ParamPanel).build_request(prompt)
        except ValidationError as e:
            self.notify(str(e), title="Invalid parameter", severity="error")
            return
        parent = self.fork_parent
        self._start_turn(request, parent, "fork" if parent is not None else "turn")
        self.fork_parent = None
        seed = self.query_one(ParamPanel).seed_field
        if not seed.locked:
            seed.randomise()

    def _start_turn(self, request: TurnRequest, parent: int | None, kind: str,
                    replay_of: TurnRow | None = None) -> None:
        from sessions.store import launch_summary

        assert self.engine is not None
        try:
            turn_id = self.session.begin_turn(request, launch_summary(self.settings.launch, self.engine.info()),
                                              parent_id=parent, kind=kind)
        except TurboError as e:
            self.notify(str(e), title="Could not record the turn", severity="error")
            return
        self.busy = True
        self.turn_done.clear()
        self.refresh_history(select=turn_id)
        self.query_one(TurnProgress).start(f"turn #{turn_id} starting")
        self.query_one(VideoPreview).show_message(f"turn #{turn_id}: waiting for the first step…")
        self._generate(turn_id, request, replay_of)

    @work(thread=True, exclusive=True, group="turn", exit_on_error=False)
    def _generate(self, turn_id: int, request: TurnRequest, replay_of: TurnRow | None) -> None:
        assert self.engine is not None
        try:
            runner.run_turn(self.session, self.engine, turn_id, request, self.post_message, replay_of)
        finally:
            self.turn_done.set()

    def action_cancel(self) -> None:
        if self.busy and self.engine is not None:
            self.engine.cancel()
            self.query_one(TurnProgress).stop("cancelling…")

    def on_generation_progress(self, message: GenerationProgress) -> None:
        event = message.event
        self.query_one(TurnProgress).advance(event)
        if event.preview is not None:
            caption = f"turn #{message.turn_id} · live preview after step {event.step}/{event.total_steps}"
            self.query_one(VideoPreview).show_live(event.preview, caption)

    def on_generation_finished(self, message: GenerationFinished) -> None:
        self.busy = False
        result = message.result
        self.refresh_history(select=message.turn_id)
        self.query_one(TurnProgress).finish(result.total_s)
        row = self.query_one(HistoryView).row(message.turn_id)
        if row is not None and row.video_paths:
            self.query_one(VideoPreview).show_video(row.video_paths[0], self._caption(row))
        text = f"turn #{message.turn_id} done in {format_seconds(result.total_s)}"
        if message.replay_match is not None:
            text += " · replay " + ("matches the original" if message.replay_match else "DIFFERS from the original")
        self.notify(text, title="Turn finished")

    def on_generation_failed(self, message: GenerationFailed) -> None:
        self.busy = False
        self.refresh_history(select=message.turn_id)
        progress = self.query_one(TurnProgress)
        if message.cancelled:
            progress.stop(f"turn #{message.turn_id} cancelled")
            self.query_one(VideoPreview).show_message(f"turn #{message.turn_id} cancelled")
            self.notify(f"turn #{message.turn_id} cancelled", severity="warning")
            return
        progress.stop(f"turn #{message.turn_id} failed")
        self.query_one(VideoPreview).show_message(str(message.error))
        title = {"OutOfMemory": "Out of memory", "ValidationError": "Invalid parameter"}.get(
            type(message.error).__name__, "Turn failed")
        self.notify(str(message.error), title=title, severity="error", timeout=15)

    def watch_busy(self) -> None:
        header = self.query_one(EngineHeader)
        if self.engine is not None:
            header.state = "generating" if self.busy else "ready"
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        self.query_one("#generate", Button).disabled = self.busy or self.engine is None
        self.query_one("#cancel", Button).disabled = not self.busy

    @on(Button.Pressed, "#generate")
    def _generate_pressed(self) -> None:
        self.action_generate()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    # -- history ---------------------------------------------------------------

    def refresh_history(self, select: int | None = None) -> None:
        try:
            rows = [runner.record_to_row(r) for r in self.session.turns()]
        except SessionError as e:
            self.notify(str(e), title="Session", severity="error")
            return
        self.query_one(HistoryView).set_rows(rows, select=select)

    def _selected(self) -> TurnRow | None:
        row = self.query_one(HistoryView).selected
        if row is None:
            self.notify("no turn selected in the history", severity="warning")
        return row

    @staticmethod
    def _caption(row: TurnRow) -> str:
        return f"#{row.id} · {row.prompt[:60]}"

    def on_history_view_picked(self, message: HistoryView.Picked) -> None:
        if self.busy:
            return  # keep the live preview of the running turn
        row = message.row
        preview = self.query_one(VideoPreview)
        if row.video_paths:
            preview.show_video(row.video_paths[0], self._caption(row))
        else:
            preview.show_message(f"#{row.id} {row.status}" + (f": {row.error}" if row.error else ""))

    def on_history_view_requested(self, message: HistoryView.Requested) -> None:
        actions = {"fork": self._fork, "star": self._star, "replay": self._replay,
                   "open": self._open, "delete": self._delete}
        actions[message.action](message.row)

    def _fork(self, row: TurnRow) -> None:
        self.query_one(PromptEditor).text = row.prompt
        self.query_one(ParamPanel).load_request(row.request)
        self.fork_parent = row.id
        self.notify(f"parameters of #{row.id} loaded: change them and generate a fork", title="Fork")

    def watch_fork_parent(self, parent: int | None) -> None:
        note = f"forking #{parent}" if parent is not None else ""
        self.query_one("#fork-note", Label).update(note)

    def _star(self, row: TurnRow) -> None:
        self._session_op(lambda: self.session.star(row.id, not row.starred), row.id)

    def _delete(self, row: TurnRow) -> None:
        if self._session_op(lambda: self.session.delete_turn(row.id), None):
            if self.fork_parent == row.id:
                self.fork_parent = None
            self.notify(f"turn #{row.id} deleted")

    def _replay(self, row: TurnRow) -> None:
        if self.engine is None or self.busy:
            self.notify("wait for the model to load and the running turn to end", severity="warning")
            return
        try:
            request = self.session.get(row.id).turn_request()
        except TurboError as e:
            self.notify(str(e), severity="error")
            return
        self._start_turn(request, row.id, "replay", replay_of=row)

    def _open(self, row: TurnRow) -> None:
        if not row.video_paths:
            self.notify(f"turn #{row.id} has no video", severity="warning")
            return
        try:
            self.opener(row.video_paths[0])
        except OSError as e:
            self.notify(str(e), title="Cannot open the video", severity="error")

    def _session_op(self, op: Callable[[], object], select: int | None) -> bool:
        try:
            op()
        except TurboError as e:
            self.notify(str(e), title="Session", severity="error")
            return False
        self.refresh_history(select=select)
        return True

    # -- actions (keys and the command palette) --------------------------------

    def _with_selected(self, fn: Callable[[TurnRow], None]) -> None:
        row = self._selected()
        if row is not None:
            fn(row)

    def action_fork(self) -> None:
        self._with_selected(self._fork)

    def action_replay(self) -> None:
        self._with_selected(self._replay)

    def action_star(self) -> None:
        self._with_selected(self._star)

    def action_delete_turn(self) -> None:
        self._with_selected(self._delete)

    def action_open_video(self) -> None:
        self._with_selected(self._open)

    def action_randomise_seed(self) -> None:
        self.query_one(ParamPanel).seed_field.randomise()

    def action_filter_history(self) -> None:
        self.query_one("#history-filter", Input).focus()

    def action_toggle_starred(self) -> None:
        box = self.query_one("#history-starred")
        box.value = not box.value  # type: ignore[attr-defined]

    def action_play_pause(self) -> None:
        self.query_one(VideoPreview).action_toggle_play()

    def action_toggle_theme(self) -> None:
        self.theme = "turbo-light" if self.theme == "turbo-dark" else "turbo-dark"

    def watch_theme(self, theme: str) -> None:
        if self._remember_theme:
            self.ui_state.remember_theme(theme, self.settings.theme)

    def action_export(self) -> None:
        self.notify("exporting the session…")
        self._export()

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def _export(self) -> None:
        runner.export(self.session, self.exports_dir, self.post_message)

    def on_export_finished(self, message: ExportFinished) -> None:
        self.notify(f"exported to {message.path}", title="Export", timeout=15)

    def on_export_failed(self, message: ExportFailed) -> None:
        self.notify(str(message.error), title="Export failed", severity="error")

    def on_unmount(self) -> None:
        if self.busy and self.engine is not None:
            self.engine.cancel()


# ---------------------------------------------------------------------------
# Entry point


def detect_graphics() -> str:
    """Which picture protocol the terminal speaks: "sixel", "tgp" (kitty) or "halfblock".

    ``textual-image`` asks the terminal once, at import, before Textual owns it, so
    this runs before the app starts.  ``TURBO_TUI_GRAPHICS=halfblock|sixel|tgp``
    overrides the guess.
    """
    forced = os.environ.get("TURBO_TUI_GRAPHICS", "").strip().lower()
    if forced in ("halfblock", "sixel", "tgp"):
        if forced != "halfblock":
            import textual_image.widget  # noqa: F401  (fills its caches before Textual starts)
        return forced
    if not sys.__stdout__ or not sys.__stdout__.isatty() or os.environ.get("TMUX"):
        return "halfblock"  # tmux passes neither protocol through by default
    try:
        import textual_image.renderable as tir
        import textual_image.widget  # noqa: F401
    except Exception:  # the probe talks to the terminal; any failure means "no graphics"
        return "halfblock"
    if tir.Image is tir.SixelImage:
        return "sixel"
    if tir.Image is tir.TGPImage:
        return "tgp"
    return "halfblock"


def run_app(settings: Settings, session_name: str | None = None) -> int:
    """Open (or create) the session, run the app, and return its exit status."""
    from sessions.store import SessionStore

    root = settings.sessions_root
    root.mkdir(parents=True, exist_ok=True)
    store = SessionStore(root)
    session = store.open_or_create(session_name) if session_name else store.create()
    try:
        app = TurboApp(settings, session, graphics=detect_graphics())
        app.run()
        # A turn still running stops at its next step (on_unmount cancelled it); let
        # it record itself before the session closes.
        app.turn_done.wait(timeout=30)
        if app.engine is not None:
            app.engine.close()
    finally:
        session.close()
    return app.return_code or 0
