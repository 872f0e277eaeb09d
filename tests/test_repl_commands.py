"""REPL commands, /set validation, parsing and completion, driven through prompt-toolkit's pipe input.

None of these run a turn, so no model is loaded here (see test_repl_session.py for turns).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from engine.api import MAX_SEED
from tests._repl_support import drive, isolated, settings_for  # noqa: F401  (fixture)
from turbo_tui.repl.loop import logical_lines, prompt_text

# Every per-turn parameter: (the /set line, the value /set echoes).
VALID = [
    ("/set seed 1234", "seed: 0 → 1234"),
    ("/set sla_topk 0.15", "sla_topk: 0.1 → 0.15"),
    ("/set sigma_max 200", "sigma_max: auto (80) → 200"),
    ("/set num_steps 2", "num_steps: 1 → 2"),
    ("/set num_frames 5", "num_frames: 1 → 5"),
    ("/set num_samples 2", "num_samples: 1 → 2"),
    ("/set resolution 480p", "resolution: 192p → 480p"),
    ("/set aspect_ratio 9:16", "aspect_ratio: 1:1 → 9:16"),
    ("/set ode on", "ode: off → on"),
    ("/set adaptive_resolution yes", "adaptive_resolution: off → on"),
    ("/set boundary 0.875", "boundary: 0.9 → 0.875"),
    ("/set image {image}", "image_path: none → {image}"),
]

# Invalid values, with the message each must print (field, value and what is allowed).
INVALID = [
    ("/set seed -1", f"seed=-1 is not allowed: a whole number from 0 to {MAX_SEED}"),
    ("/set seed lots", "seed='lots' is not allowed: a whole number"),
    ("/set sla_topk 0", "sla_topk=0.0 is not allowed: a fraction in (0, 1]"),
    ("/set sla_topk 1.5", "sla_topk=1.5 is not allowed: a fraction in (0, 1]"),
    ("/set sigma_max -3", "sigma_max=-3.0 is not allowed: a number > 0"),
    ("/set num_steps 5", "num_steps=5 is not allowed: a whole number from 1 to 4"),
    ("/set num_steps 2.5", "num_steps='2.5' is not allowed: a whole number"),
    ("/set num_frames 16", "num_frames=16 is not allowed: a whole number of the form 4k+1"),
    ("/set num_samples 0", "num_samples=0 is not allowed: a whole number from 1 to 16"),
    ("/set resolution 4k", "resolution='4k' is not allowed: one of 480p, 720p"),
    ("/set aspect_ratio 21:9", "aspect_ratio='21:9' is not allowed: one of 16:9"),
    ("/set ode maybe", "ode='maybe' is not allowed: true or false"),
    ("/set adaptive_resolution 2", "adaptive_resolution='2' is not allowed: true or false"),
    ("/set boundary 1", "boundary=1.0 is not allowed: a number in (0, 1)"),
    ("/set image /no/such/file.png", "image_path='/no/such/file.png' is not allowed: an existing image file"),
    ("/set image {not_image}", "is not allowed: a readable PNG/JPEG/WebP image"),
    ("/set colour red", "parameter='colour' is not allowed: one of seed, num_steps"),
    ("/set seed", "usage: /set seed VALUE"),
]


@pytest.fixture
def images(isolated: Path) -> dict[str, str]:
    good = isolated / "cat.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(good)
    bad = isolated / "notes.png"
    bad.write_text("not a picture")
    return {"image": str(good), "not_image": str(bad)}


def test_set_every_parameter_valid(isolated: Path, images: dict[str, str]) -> None:
    lines = [line.format(**images) for line, _ in VALID]
    rc, out = drive(settings_for(isolated), "\r".join(lines) + "\r/show\r/quit\r")
    assert rc == 0
    for _, echo in VALID:
        assert echo.format(**images) in out
    assert "error" not in out
    # /show marks every changed per-turn value with *
    show = out[out.index("per turn"):]
    for name in ("seed", "sla_topk", "sigma_max", "num_steps", "num_frames", "num_samples", "resolution",
                 "aspect_ratio", "ode", "adaptive_resolution", "boundary", "image_path"):
        row = next(line for line in show.splitlines() if f" {name} " in line)
        assert row.lstrip().startswith("*"), row


def test_set_invalid_values_print_one_line_and_keep_going(isolated: Path, images: dict[str, str]) -> None:
    lines = [line.format(**images) for line, _ in INVALID]
    rc, out = drive(settings_for(isolated), "\r".join(lines) + "\r/show\r/quit\r")
    assert rc == 0
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(INVALID), errors
    for (_, message), line in zip(INVALID, errors):
        assert message.format(**images) in line
    show = out[out.index("per turn"):]
    assert not any(line.lstrip().startswith("*") for line in show.splitlines()), "nothing may change"


def test_aliases_reset_and_show(isolated: Path) -> None:
    keys = "/set steps 3\r/set frames 9\r/set topk 0.2\r/set sigma 1600\r/set sigma auto\r/show\r/reset\r/show\r/quit\r"
    rc, out = drive(settings_for(isolated, seed=5), keys)
    assert "num_steps: 1 → 3" in out and "num_frames: 1 → 9" in out and "sla_topk: 0.1 → 0.2" in out
    assert "sigma_max: 1600 → auto (80)" in out
    first, second = out.split("parameters reset to the defaults")
    assert any(line.lstrip().startswith("*") and " num_steps " in line for line in first.splitlines())
    # after /reset the config's override (seed 5) is the default, and nothing is marked
    assert not any(line.lstrip().startswith("*") for line in second[second.index("per turn"):].splitlines())
    seed_row = next(line for line in second.splitlines() if " seed " in line)
    assert seed_row.split("│")[2].strip() == "5", seed_row


def test_show_lists_launch_config(isolated: Path) -> None:
    rc, out = drive(settings_for(isolated), "/show\r/quit\r")
    assert "launch" in out and "model" in out and "tiny" in out and "attention" in out and "sla" in out


def test_help_unknown_command_and_quit_stops_reading(isolated: Path) -> None:
    rc, out = drive(settings_for(isolated), "/help\r/help set\r/help replay\r/frobnicate\r/quit\r/show\r")
    assert rc == 0
    for name in ("/help", "/show", "/set", "/reset", "/quit", "/history", "/replay", "/fork", "/star",
                 "/export", "/session", "/open"):
        assert name in out
    assert "aliases" in out and "4k+1 frames" in out  # /help set
    assert "/replay N  run turn N again" in out
    assert "error: unknown command /frobnicate (type /help for the list)" in out
    assert "(fixed while the engine is loaded)" not in out, "nothing after /quit runs"


def test_session_commands_without_turns(isolated: Path) -> None:
    keys = "/history\r/replay 3\r/star x\r/open\r/session other\r/session\r/session test\r/quit\r"
    rc, out = drive(settings_for(isolated), keys)
    assert "session test has no turns yet" in out
    assert "error: no turn 3 in session test (it has no turns yet)" in out
    assert "error: usage: /star N (N is a turn number from /history)" in out
    assert "error: no turn with a video yet" in out
    assert "created session other (0 turns)" in out
    assert "* other" in out and "  test" in out
    assert "switched to session test" in out
    assert (isolated / "sessions" / "other" / "session.db").is_file()


def test_bad_session_name(isolated: Path) -> None:
    rc, out = drive(settings_for(isolated), "/session ../evil\r/quit\r")
    assert "error: session name '../evil' is not allowed" in out


def test_ctrl_c_clears_the_line_and_ctrl_d_leaves(isolated: Path) -> None:
    rc, out = drive(settings_for(isolated), "/set seed 9\x03/set seed 4\r\x04")
    assert rc == 0
    assert "seed: 0 → 4" in out and "→ 9" not in out


def test_history_file_persists_across_runs(isolated: Path) -> None:
    hist = isolated / "hist"
    drive(settings_for(isolated), "/set seed 11\r/quit\r", history_path=hist)
    drive(settings_for(isolated), "/set seed 12\r/quit\r", history_path=hist)
    text = hist.read_text()
    assert "/set seed 11" in text and "/set seed 12" in text and text.index("11") < text.index("12")


def test_default_history_file_lives_in_the_user_data_dir(isolated: Path) -> None:
    drive(settings_for(isolated), "/set seed 3\r/quit\r", history_path=None)
    assert "/set seed 3" in (isolated / "data" / "turbo-tui" / "repl_history").read_text()


def test_prompt_continuation_and_batch_lines() -> None:
    assert prompt_text("a red\n  cat \n\non a mat") == "a red cat on a mat"
    lines = ["# comment", "", "a red \\", "cat", "/set seed 3", "  \\", "last \\"]
    assert list(logical_lines(lines)) == ["a red \ncat", "/set seed 3", "  \nlast "]


def _complete(state, text: str) -> list[str]:
    from turbo_tui.repl.completion import ReplCompleter

    return [c.text for c in ReplCompleter(state).get_completions(Document(text), CompleteEvent(True))]


def test_completion(isolated: Path) -> None:
    from rich.console import Console

    from turbo_tui.repl.sessionlink import SessionLink
    from turbo_tui.repl.state import EngineHandle, ReplState

    settings = settings_for(isolated)
    link = SessionLink.open(settings.sessions_root, "comp")
    try:
        state = ReplState(settings=settings, console=Console(), engine=EngineHandle(settings.launch),
                          session=link, request=settings.default_turn())
        assert _complete(state, "/") [:3] == ["/help", "/show", "/set"]
        assert _complete(state, "/re") == ["/reset", "/replay"]
        assert "sla_topk" in _complete(state, "/set s") and "seed" in _complete(state, "/set s")
        assert "steps" in _complete(state, "/set st")  # alias
        assert _complete(state, "/set resolution 7") == ["720p", "720"]
        assert _complete(state, "/set aspect_ratio ") == ["16:9", "9:16", "1:1", "4:3", "3:4"]
        assert _complete(state, "/set ode o") == ["on", "off"]
        assert "auto" in _complete(state, "/set sigma_max ")
        (isolated / "pics").mkdir()
        Image.new("RGB", (8, 8)).save(isolated / "pics" / "dog.png")
        assert "og.png" in _complete(state, f"/set image {isolated}/pics/d")
        assert _complete(state, "/session co") == ["comp"]
        assert _complete(state, "/paths o") == ["on", "off"]
        assert _complete(state, "a prompt /s") == []
    finally:
        link.close()


def test_repl_modules_do_not_import_torch() -> None:
    code = (
        "import sys, turbo_tui.repl.loop, turbo_tui.repl.commands, turbo_tui.repl.completion, "
        "turbo_tui.repl.turns, turbo_tui.repl.keys; "
        "print(','.join(m for m in ('torch', 'triton') if m in sys.modules) or 'clean')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "clean", out.stderr
