"""Run the real ``turbo-tui`` in a detached tmux session, type a prompt, press F5, read the screen.

Skipped only where tmux is missing (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=20).stdout


def _wait_screen(name: str, predicate, timeout: float, what: str) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _tmux("capture-pane", "-p", "-t", name)
        if predicate(screen):
            return screen
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen}")


def test_turn_completes_in_real_terminal(tmp_path):
    exe = Path(sys.executable).parent / "turbo-tui"
    assert exe.exists(), exe
    name = f"turbo-tui-test-{uuid.uuid4().hex[:8]}"
    sessions = tmp_path / "sessions"
    done_file = tmp_path / "exit-code"
    env = (f"XDG_CONFIG_HOME={tmp_path / 'config'} XDG_DATA_HOME={tmp_path / 'data'} "
           f"TERM=xterm-256color COLORTERM=truecolor")
    cmd = (f"env {env} {exe} --session-dir {sessions} --session tmux "
           f"--num-frames 1 --num-steps 1 --aspect-ratio 1:1; echo $? > {done_file}")
    _tmux("new-session", "-d", "-s", name, "-x", "150", "-y", "45", cmd)
    try:
        _wait_screen(name, lambda s: "[ready]" in s, 120, "the model to load")
        _tmux("send-keys", "-t", name, "-l", "a lighthouse at dusk")
        _wait_screen(name, lambda s: "a lighthouse at dusk" in s, 10, "the prompt to show")
        _tmux("send-keys", "-t", name, "F5")
        screen = _wait_screen(name, lambda s: "✓ #1" in s and "done" in s, 120, "the turn to complete")
        assert "a lighthouse at dusk" in screen
        _tmux("send-keys", "-t", name, "C-q")
        deadline = time.monotonic() + 30
        while not done_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert done_file.read_text().strip() == "0"
    finally:
        _tmux("kill-session", "-t", name)

    from sessions.store import SessionStore

    with SessionStore(sessions).open("tmux") as session:
        turns = session.turns()
        assert [(t.prompt, t.status) for t in turns] == [("a lighthouse at dusk", "done")]
        assert all(os.path.getsize(p) > 0 for p in turns[0].video_paths)
