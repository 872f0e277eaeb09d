"""Helpers for the Textual app tests (a plain module, not a conftest, so it cannot collide).

The engine is the real built-in tiny model on the CPU, opened once per test process
and handed to each app; every test gets its own session, config and state folders.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, Callable

from _tiny import tiny_engine  # noqa: F401  (re-exported for the tests)
from engine.api import Engine
from turbo_tui.app import TurboApp
from turbo_tui.config import Settings
from turbo_tui.messages import GenerationProgress

# The smallest turn the tiny model makes: one 192x192 frame (seconds on a CPU).
FAST_TURN = {"num_frames": 1, "aspect_ratio": "1:1", "num_steps": 1}
SIZE = (150, 46)




def make_settings(tmp_path: Path, **turn: Any) -> Settings:
    return Settings(turn_overrides={**FAST_TURN, **turn}, session_dir=str(tmp_path / "sessions"))


def open_session(settings: Settings, name: str = "test"):
    from sessions.store import SessionStore

    root = settings.sessions_root
    root.mkdir(parents=True, exist_ok=True)
    return SessionStore(root).open_or_create(name)


class RecordingApp(TurboApp):
    """The real app, also keeping every progress event it was sent (for assertions).

    ``hold_after_step = n`` makes the worker wait, right after reporting denoise step n,
    until the test sets ``release``: on a CPU the tiny model's steps take a fraction of
    the time the UI needs to see an event, so a test pressing Esc "between steps" needs
    the worker to pause there.  The engine itself is untouched.
    """

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.progress_events: list = []
        self.opened: list[str] = []
        self.hold_after_step: int | None = None
        self.held = threading.Event()
        self.release = threading.Event()

    def post_message(self, message) -> bool:
        posted = super().post_message(message)
        if (self.hold_after_step is not None and isinstance(message, GenerationProgress)
                and message.event.stage == "denoise" and message.event.status == "step"
                and message.event.step == self.hold_after_step
                and threading.current_thread() is not threading.main_thread()):
            self.held.set()
            self.release.wait(timeout=60)
        return posted

    def on_generation_progress(self, message: GenerationProgress) -> None:
        self.progress_events.append(message.event)
        super().on_generation_progress(message)


def make_app(tmp_path: Path, session=None, *, engine: Engine | None | bool = True, **turn: Any) -> RecordingApp:
    settings = make_settings(tmp_path, **turn)
    session = session or open_session(settings)
    app = RecordingApp(
        settings, session,
        state_path=tmp_path / "config" / "ui-state.json",
        engine=tiny_engine() if engine is True else (engine or None),
        exports_dir=tmp_path / "exports",
    )
    app.opener = lambda path: app.opened.append(path) or path  # never start a real player in tests
    return app


async def wait_for(pilot, cond: Callable[[], bool], timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


async def wait_idle(pilot, app: TurboApp, timeout: float = 90.0) -> None:
    await wait_for(pilot, lambda: app.engine is not None and not app.busy, timeout, "the turn to end")
    await pilot.pause()


async def set_input(pilot, selector: str, text: str) -> None:
    """Focus an input, clear it and type ``text`` key by key, as a person would."""
    app = pilot.app
    widget = app.query_one(selector)
    widget.focus()
    await pilot.pause()
    widget.value = ""
    await pilot.press(*[{" ": "space", ".": "full_stop"}.get(c, c) for c in text])
    await pilot.pause()


async def type_prompt(pilot, text: str) -> None:
    area = pilot.app.query_one("#prompt")
    area.focus()
    area.text = ""
    await pilot.press(*[{" ": "space"}.get(c, c) for c in text])
    await pilot.pause()


def close_later(session) -> None:
    session.close()


__all__ = ["asyncio", "FAST_TURN", "SIZE", "tiny_engine", "make_settings", "open_session", "RecordingApp",
           "make_app", "wait_for", "wait_idle", "set_input", "type_prompt"]


async def generate(pilot, app: TurboApp, key: str = "ctrl+g", timeout: float = 90.0) -> None:
    """Press a generate key and wait until the new turn is recorded as finished (done, failed, cancelled)."""
    before = len(app.session.turns())
    await pilot.press(key)

    def finished() -> bool:
        turns = app.session.turns()
        return len(turns) > before and turns[-1].status != "running" and not app.busy

    await wait_for(pilot, finished, timeout, "the turn to finish")
    await pilot.pause()
