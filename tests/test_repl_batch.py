"""Batch mode: ``turbo-tui repl --batch FILE`` and ``turbo-tui repl < FILE`` run each line as a turn."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from sessions.store import SessionStore
from tests._repl_support import isolated, run_batch_file, settings_for, tiny_engine  # noqa: F401  (fixture)
from turbo_tui.cli import main


def test_batch_file_runs_turns_and_fails_on_a_bad_line(isolated: Path) -> None:
    script = isolated / "prompts.txt"
    script.write_text(
        "# a comment, then a blank line\n"
        "\n"
        "/set seed 3\n"
        "a blue \\\n"
        "bird\n"
        "/set num_frames 16\n"  # bad: not 4k+1
        "/set image missing.png\n"  # bad: no such file
        "/history\n"
    )
    rc, out = run_batch_file(settings_for(isolated), script, engine=tiny_engine())
    assert rc == 1, out
    assert "› a blue bird" in out and "✓ turn 1" in out and "step 1/1" in out
    assert "error: num_frames=16 is not allowed: a whole number of the form 4k+1" in out
    assert "error: image_path='missing.png' is not allowed: an existing image file" in out
    assert "1 turn done, 2 failed" in out
    with SessionStore(isolated / "sessions").open("batch", readonly=True) as session:
        (turn,) = session.turns()
        assert (turn.prompt, turn.status, turn.request["seed"]) == ("a blue bird", "done", 3)


def test_batch_failed_turn_is_recorded_and_the_rest_still_runs(isolated: Path, tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "pic.png")
    script = isolated / "prompts.txt"
    # an input image on the text-to-video tiny model: the engine refuses the turn
    script.write_text(f"/set image {tmp_path / 'pic.png'}\na cat\n/set image none\n/show\n/quit\nnever run\n")
    rc, out = run_batch_file(settings_for(isolated), script, engine=tiny_engine())
    assert rc == 1
    assert "error: image_path=" in out and "only with an I2V model" in out
    assert "image_path: " in out and "→ none" in out and "never run" not in out
    with SessionStore(isolated / "sessions").open("batch", readonly=True) as session:
        (turn,) = session.turns()
        assert turn.status == "failed" and "I2V" in (turn.error or "")


def test_piped_stdin_is_batch_mode(isolated: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from turbo_tui.repl import run_repl

    monkeypatch.setattr(sys, "stdin", io.StringIO("/set seed 2\n/show\n"))
    assert run_repl(settings_for(isolated), session_name="piped") == 0
    out = capsys.readouterr().out
    assert "seed: 0 → 2" in out and "0 turns done" in out

    monkeypatch.setattr(sys, "stdin", io.StringIO("/set seed 2\n/bogus\n"))
    assert run_repl(settings_for(isolated), session_name="piped") == 1
    assert "error: unknown command /bogus" in capsys.readouterr().out


def test_cli_repl_batch(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = isolated / "cmds.txt"
    script.write_text("/set steps 2\n/history\n")
    sessions = str(isolated / "sessions")
    assert main(["--session-dir", sessions, "--session", "cli", "repl", "--batch", str(script)]) == 0
    out = capsys.readouterr().out
    assert "num_steps: 3 → 2" in out and "session cli has no turns yet" in out  # tiny starts at 3 steps
    assert (isolated / "sessions" / "cli" / "session.db").is_file()

    assert main(["--session-dir", sessions, "repl", "--batch", str(isolated / "nope.txt")]) == 2
    assert "cannot read the batch file" in capsys.readouterr().out


def test_turbo_tui_repl_reads_prompts_from_stdin(isolated: Path) -> None:
    """The real command, as a script would run it: `turbo-tui repl < prompts.txt`."""
    import subprocess

    prompts = "/set seed 4\na green \\\nfrog\n/set num_steps 9\n"
    cmd = [sys.executable, "-m", "turbo_tui.cli", "--session-dir", str(isolated / "sessions"),
           "--session", "piped", "--num-frames", "1", "--num-steps", "1", "--aspect-ratio", "1:1", "repl"]
    proc = subprocess.run(cmd, input=prompts, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the bad /set fails the run
    assert "✓ turn 1" in proc.stdout and "error: num_steps=9 is not allowed" in proc.stdout
    with SessionStore(isolated / "sessions").open("piped", readonly=True) as session:
        (turn,) = session.turns()
        assert (turn.prompt, turn.status, turn.request["seed"]) == ("a green frog", "done", 4)
