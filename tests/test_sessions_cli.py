"""``turbo-tui sessions ...`` through turbo_tui.cli.main, on a session store in a temporary folder."""

from __future__ import annotations

import io
import zipfile

import pytest
from rich.console import Console

import engine.api
from engine.api import TurnRequest
from engine.errors import SessionError
from sessions import SessionStore, run_turn
from sessions.testing import PatternEngine
from turbo_tui.cli import main
from turbo_tui.commands.sessions import parse_turns, run_sessions
from turbo_tui.config import Settings


@pytest.fixture
def root(tmp_path):
    store = SessionStore(tmp_path / "sessions")
    with store.create("films") as s:
        eng = PatternEngine()
        run_turn(s, TurnRequest(prompt="a tram in fog [/b] [red]", seed=11, resolution="192p", num_frames=5), eng)
        run_turn(s, TurnRequest(prompt="a tram at night", seed=12, resolution="192p", num_frames=5), eng)
        s.fail_turn(s.begin_turn(TurnRequest(prompt="a broken one", seed=13)), "device out of memory")
        s.star(2)
    return tmp_path / "sessions"


def run(root, *argv, monkeypatch=None) -> tuple[int, str]:
    out = io.StringIO()
    code = run_sessions(Settings(session_dir=str(root)), list(argv), console=Console(file=out, width=160))
    return code, out.getvalue()


def test_list_and_show(root):
    code, text = run(root, "list")
    assert code == 0 and "films" in text and "3" in text
    code, text = run(root, "show", "films")
    assert code == 0
    assert "a tram in fog [/b] [red]" in text and "a broken one" in text and "failed" in text and "★" in text
    code, text = run(root, "show", "films", "--filter", "NIGHT")
    assert "a tram at night" in text and "a tram in fog" not in text
    code, text = run(root, "show", "films", "3")
    assert code == 0 and "device out of memory" in text and "seed" in text


def test_export_import_delete(root, tmp_path):
    code, text = run(root, "export", "films", str(tmp_path / "out"), "--turns", "2,1", "--zip", "--reel")
    assert code == 0 and "out.zip" in text
    with zipfile.ZipFile(tmp_path / "out.zip") as z:
        assert {"session.json", "index.html", "reel.mp4"} <= set(z.namelist())
    code, text = run(root, "import", str(tmp_path / "out.zip"), "--name", "copy")
    assert code == 0 and "copy" in text
    with SessionStore(root).open("copy") as s:
        assert [t.id for t in s.turns()] == [1, 2]
    with pytest.raises(SessionError, match="--yes"):
        run(root, "delete", "copy")  # not interactive: must be confirmed with --yes
    code, _ = run(root, "delete", "copy", "--yes")
    assert code == 0 and not (root / "copy").exists()


def test_replay_through_open_engine(root, monkeypatch):
    opened = []

    def fake_open(launch, on_progress=None):
        opened.append(launch)
        return PatternEngine()

    monkeypatch.setattr(engine.api, "open_engine", fake_open)
    code, text = run(root, "replay", "films", "1")
    assert code == 0 and "replayed as turn 4" in text and "matches" in text
    assert opened and opened[0].model == "tiny"
    with SessionStore(root).open("films") as s:
        assert (s.get(4).kind, s.get(4).parent_id, s.get(4).replay_match) == ("replay", 1, True)


def test_errors_and_help_via_main(root, capsys):
    assert main(["--session-dir", str(root), "sessions", "show", "nope"]) == 2
    assert "no session 'nope'" in capsys.readouterr().err
    assert main(["--session-dir", str(root), "sessions", "show", "films", "99"]) == 2
    assert "no turn 99" in capsys.readouterr().err
    assert main(["--session-dir", str(root), "sessions", "help"]) == 0
    assert "export" in capsys.readouterr().out
    assert main(["--session-dir", str(root), "sessions", "frobnicate"]) == 2
    assert parse_turns("1,3,5-7") == [1, 3, 5, 6, 7]
    with pytest.raises(SessionError):
        parse_turns("1,x")
