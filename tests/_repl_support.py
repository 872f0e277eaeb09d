"""Helpers for the REPL tests: drive ``run_repl`` through prompt-toolkit's pipe input.

The engine is the real built-in tiny model on the CPU, opened once per test process and
shared (loading it is the slow part); every test gets its own session, config and data folders.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from _tiny import tiny_engine  # noqa: F401  (re-exported for the tests)
from turbo_tui.config import Settings

# The smallest turn the tiny model makes: one 192x192 frame, one step (seconds on a CPU).
FAST_TURN = {"num_frames": 1, "aspect_ratio": "1:1", "num_steps": 1}




@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temp config/data dirs (the history file defaults there) and a temp working folder."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def settings_for(tmp_path: Path, **turn: Any) -> Settings:
    return Settings(session_dir=str(tmp_path / "sessions"), turn_overrides={**FAST_TURN, **turn})


def drive(settings: Settings, keys: str, *, session: str = "test", **kw: Any) -> tuple[int, str]:
    """Type ``keys`` (``\\r`` is Enter) into an interactive REPL; return (exit status, printed text)."""
    buf = io.StringIO()
    console = Console(file=buf, width=160, force_terminal=False, color_system=None)
    kw.setdefault("ask_paths", False)
    kw.setdefault("preload", False)
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        rc = run(settings, session, pipe, console, **kw)
    return rc, buf.getvalue()


def run(settings: Settings, session: str, pipe: Any, console: Console, **kw: Any) -> int:
    from turbo_tui.repl import run_repl

    return run_repl(settings, session_name=session, input=pipe, output=DummyOutput(), console=console, **kw)


def run_batch_file(settings: Settings, path: Path, *, session: str = "batch", **kw: Any) -> tuple[int, str]:
    from turbo_tui.repl import run_repl

    buf = io.StringIO()
    console = Console(file=buf, width=160, force_terminal=False, color_system=None)
    rc = run_repl(settings, session_name=session, batch=str(path), console=console, **kw)
    return rc, buf.getvalue()
