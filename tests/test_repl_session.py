"""Turns through the REPL on the real tiny model: recorded in the session, replayed, exported, cancelled."""

from __future__ import annotations

import signal
import json
import threading
from pathlib import Path

from sessions.store import SessionStore
from tests._repl_support import drive, isolated, settings_for, tiny_engine  # noqa: F401  (fixture)


def test_multiline_turn_history_replay_star_export_open_quit(isolated: Path) -> None:
    settings = settings_for(isolated, seed=7)
    opened: list[str] = []
    keys = (
        "a red \\\r"  # trailing backslash: the prompt goes on
        "cat on a mat\r"
        "out/clip.mp4\r"  # the output-path question
        "/history\r"
        "/replay 1\r"
        "\r"  # replay asks nothing; this empty line is ignored
        "/star 1\r"
        "/history\r"
        "/open 1\r"
        "/fork 1\r"
        "\x03"  # Ctrl-C clears the prefilled fork prompt
        "/show\r"
        "/export exported\r"
        "/quit\r"
        "never typed\r"
    )
    rc, out = drive(settings, keys, engine=tiny_engine(), ask_paths=True, opener=opened.append)
    assert rc == 0, out

    # the turn: a progress line per step, the saved path, per-stage timings
    assert "turn a red cat on a mat" in out
    assert "step 1/1" in out
    assert "✓ turn 1 · encode" in out and "denoise" in out and "decode" in out and "total" in out
    assert "saved " in out and "copied to " in out
    assert (isolated / "out" / "clip.mp4").stat().st_size > 0

    # /replay N ran turn 2 with turn 1's parameters, linked to it
    assert "replaying turn 1: a red cat on a mat" in out
    assert "✓ turn 2" in out
    assert "turn 1 starred ★" in out
    hist = out[out.index("turn 1 starred ★"):out.index("opening ")]
    assert "replay of 1" in hist and "★" in hist

    with SessionStore(isolated / "sessions").open("test", readonly=True) as session:
        t1, t2 = session.turns()
        assert (t1.prompt, t1.status, t1.kind, t1.starred) == ("a red cat on a mat", "done", "turn", True)
        assert t1.request["seed"] == 7 and t1.request["num_frames"] == 1
        assert (t2.kind, t2.parent_id, t2.status) == ("replay", 1, "done")
        assert t2.request == t1.request
        assert t2.replay_match is not None
        assert Path(t1.video_paths[0]).is_file()
        assert opened == list(t1.video_paths)

    assert "the next prompt forks turn 1" in out
    manifest = json.loads((isolated / "exported" / "session.json").read_text())
    assert [t["prompt"] for t in manifest["turns"]] == ["a red cat on a mat"] * 2
    assert "exported session test to" in out
    assert "never typed" not in out


class CtrlCAtFirstStep:
    """The real engine, with a person pressing Ctrl-C as the first denoising step ends.

    The SIGINT goes to the main thread (where the REPL waits for the turn); the engine's
    thread then waits until the REPL has asked the engine to cancel, so the timing is exact.
    """

    def __init__(self, engine):
        self.engine = engine
        self.cancel_asked = threading.Event()

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def cancel(self) -> None:
        self.cancel_asked.set()
        self.engine.cancel()

    def generate(self, request, output_dir, on_progress=None):
        def progress(ev):
            if on_progress is not None:
                on_progress(ev)
            if ev.stage == "denoise" and ev.status == "step" and not self.cancel_asked.is_set():
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                assert self.cancel_asked.wait(10), "Ctrl-C did not cancel the turn"

        return self.engine.generate(request, output_dir, progress)


def test_the_repl_owns_sigint_while_interactive() -> None:
    """Started with SIGINT ignored (a background job of a script), Ctrl-C must still cancel."""
    from turbo_tui.repl import ctrl_c_raises

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with ctrl_c_raises():
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # given back on the way out
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_cancels_the_turn_not_the_session(isolated: Path) -> None:
    engine = CtrlCAtFirstStep(tiny_engine())
    rc, out = drive(settings_for(isolated), "a slow cat\r/set seed 5\r/history\r/quit\r", engine=engine)
    assert rc == 0
    assert engine.cancel_asked.is_set(), out
    assert "cancelling" in out and "turn cancelled (turn 1)" in out
    assert "seed: 0 → 5" in out, "the loop goes on after the cancel"
    with SessionStore(isolated / "sessions").open("test", readonly=True) as session:
        (t1,) = session.turns()
        assert t1.status == "cancelled"
