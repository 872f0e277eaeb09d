"""The one object the REPL's commands, key bindings and loop share.

Nothing here imports torch: the engine is opened through :func:`engine.api.open_engine`,
in a background thread, so the prompt is usable while the models load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape

from engine.api import Engine, LaunchConfig, TurnRequest, open_engine
from engine.errors import TurboError
from turbo_tui.config import Settings, user_data_dir
from turbo_tui.repl.sessionlink import SessionLink


class EngineHandle:
    """Opens the engine once (in the background) and hands it out to turns."""

    def __init__(self, launch: LaunchConfig, engine: Engine | None = None,
                 opener: Callable[[LaunchConfig], Engine] = open_engine):
        self.launch = launch
        self._engine = engine
        self._owned = engine is None  # close only what we opened
        self._opener = opener
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._loaded = threading.Event()  # set when the load ends, either way
        self._lock = threading.Lock()

    def start(self) -> None:
        """Begin loading in a background thread (no-op if loaded or loading)."""
        with self._lock:
            if self._engine is not None or self._thread is not None:
                return
            self._thread = threading.Thread(target=self._load, name="turbo-engine-load", daemon=True)
            self._thread.start()

    def _load(self) -> None:
        try:
            self._engine = self._opener(self.launch)
        except BaseException as e:  # kept and re-raised in the thread that asks for the engine
            self._error = e
        finally:
            self._loaded.set()

    @property
    def ready(self) -> bool:
        return self._engine is not None

    def get(self) -> Engine:
        """The open engine; waits for the load (interruptible) and re-raises its error."""
        if self._engine is not None:
            return self._engine
        self.start()
        # Short waits on an Event keep Ctrl-C deliverable (Thread.join can be corrupted by it on 3.11).
        while not self._loaded.wait(0.1):
            pass
        if self._engine is None:
            err = self._error or TurboError("the engine did not load")
            if isinstance(err, TurboError):
                raise err
            raise TurboError(f"the engine failed to load: {type(err).__name__}: {err}") from err
        return self._engine

    def cancel(self) -> None:
        if self._engine is not None:
            self._engine.cancel()

    def close(self) -> None:
        if self._owned and self._engine is not None:
            self._engine.close()
            self._engine = None


def default_history_path() -> Path:
    return user_data_dir() / "repl_history"


def system_open(path: str) -> None:
    """Play a file in the system's default application, without waiting for it."""
    if sys.platform == "darwin":
        cmd = ["open", path]
    elif os.name == "nt":
        os.startfile(path)  # type: ignore[attr-defined]  # Windows only
        return
    else:
        if shutil.which("xdg-open") is None:
            raise TurboError("no system player: xdg-open is not installed (open the file yourself: " + path + ")")
        cmd = ["xdg-open", path]
    subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)


@dataclass
class ReplState:
    """Mutable state of one REPL run: current parameters, session, engine, counters."""

    settings: Settings
    console: Console
    engine: EngineHandle
    session: SessionLink  # the open session (and the store, for /session)
    request: TurnRequest  # the current per-turn parameters; its prompt is unused
    interactive: bool = True
    ask_paths: bool = True  # ask for the I2V image and output path after each prompt
    opener: Callable[[str], None] = system_open
    history_path: Path = field(default_factory=default_history_path)
    failures: int = 0  # turns or commands that failed (batch exit status)
    turns_run: int = 0
    quit: bool = False
    fork_parent: Any = None  # parent turn id of the next prompt (after /fork)
    prefill: str = ""  # text put in the next prompt (after /fork)

    @property
    def launch(self) -> LaunchConfig:
        return self.settings.launch

    @property
    def defaults(self) -> TurnRequest:
        """What /reset returns to: model defaults plus the config file's and flags' overrides."""
        return self.settings.default_turn()

    def set_param(self, field_name: str, value: Any) -> None:
        self.request = self.request.replace(**{field_name: value})

    def reset(self) -> None:
        self.request = self.defaults
        self.fork_parent = None

    def take_prefill(self) -> str:
        text, self.prefill = self.prefill, ""
        return text

    def error(self, message: str) -> None:
        """One line, and the loop goes on."""
        self.failures += 1
        self.console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
