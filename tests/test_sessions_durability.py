"""Nothing is lost: kills mid-write, corrupt and foreign databases, schema migration."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.errors import SessionError
from sessions import SCHEMA_VERSION, SessionStore
from sessions.files import atomic_write
from sessions.schema import check_file

REPO = Path(__file__).resolve().parents[1]


def _spawn(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def test_kill_during_turn_file_write(tmp_path):
    # A real process begins a turn, then dies (SIGKILL) halfway through writing its video.
    proc = _spawn("""
        import sys, time
        from sessions import SessionStore
        from sessions.files import atomic_write
        s = SessionStore(sys.argv[1]).create("killed")
        tid = s.begin_turn({"prompt": "a lighthouse at dusk", "seed": 7}, {"model": "tiny"})
        with atomic_write(s.output_dir_for(tid) / "video.mp4") as f:
            f.write(b"\\0" * 65536)
            f.flush()
            print(tid, flush=True)
            while True:
                f.write(b"\\1" * 4096)
                f.flush()
                time.sleep(0.005)
    """, str(tmp_path))
    tid = int(proc.stdout.readline())
    turn_dir = tmp_path / "killed" / "files" / "turns" / f"{tid:04d}"
    assert [p.name for p in turn_dir.iterdir() if p.name.endswith(".partial.mp4")]  # it was mid-write
    _kill(proc)
    (turn_dir / ".turn-1-s0.part.mp4").write_bytes(b"half a video")  # as the engine's own writer leaves it

    with SessionStore(tmp_path).open("killed") as s:
        rec = s.get(tid)
        assert rec.status == "interrupted" and "interrupted" in rec.error
        assert rec.request["prompt"] == "a lighthouse at dusk" and rec.launch == {"model": "tiny"}
        assert not (turn_dir / "video.mp4").exists()  # no partial file under its final name
        assert list(turn_dir.iterdir()) == []  # and the half-written temporary is swept away
        assert s._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        s.fail_turn(s.begin_turn({"prompt": "next"}), "x")  # the session goes on


def test_kill_during_database_writes(tmp_path):
    # Turns begun and finished in a tight loop, killed at an arbitrary moment.
    proc = _spawn("""
        import sys
        from sessions import SessionStore
        s = SessionStore(sys.argv[1]).create("busy")
        n = 0
        while True:
            tid = s.begin_turn({"prompt": f"turn {n}", "seed": n})
            s.note(tid, "x" * 500)
            s.fail_turn(tid, "done on purpose")
            n += 1
            if n == 20:
                print("go", flush=True)
    """, str(tmp_path))
    assert proc.stdout.readline().strip() == "go"
    _kill(proc)
    with SessionStore(tmp_path).open("busy") as s:
        turns = s.turns()
        assert len(turns) >= 20
        assert {t.status for t in turns[:-1]} == {"failed"}
        assert turns[-1].status in ("failed", "interrupted")
        assert s._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def _session_with_turns(root: Path, name: str = "s", n: int = 30) -> Path:
    with SessionStore(root).create(name) as s:
        for i in range(n):
            s.fail_turn(s.begin_turn({"prompt": f"prompt {i} " + "words " * 50}), "x")
    return root / name / "session.db"


@pytest.mark.parametrize("damage", ["garbage", "pages", "truncated"])
def test_corrupt_database_is_refused_and_untouched(tmp_path, damage):
    db = _session_with_turns(tmp_path)
    data = bytearray(db.read_bytes())
    if damage == "garbage":
        data = bytearray(b"this is not a database\n" * 200)
    elif damage == "pages":
        page = int.from_bytes(data[16:18], "big")
        for off in range(page, len(data), 7):  # keep the header, scribble over every page after it
            data[off] = (data[off] * 31 + 7) % 256
    else:
        data = data[: len(data) // 3]
    db.write_bytes(bytes(data))
    before = db.read_bytes()

    with pytest.raises(SessionError) as err:
        SessionStore(tmp_path).open("s")
    assert "\n" not in str(err.value) and "session.db" in str(err.value)
    assert db.read_bytes() == before  # never written
    info = SessionStore(tmp_path).list()[0]
    assert info.problem is not None
    with pytest.raises(SessionError):
        SessionStore(tmp_path).open("s", readonly=True)
    assert db.read_bytes() == before


def test_foreign_sqlite_file_is_refused_and_untouched(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    db = folder / "session.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.execute("INSERT INTO people VALUES ('ada')")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    store = SessionStore(tmp_path)
    with pytest.raises(SessionError, match="not a turbo-tui session"):
        store.open("notes")
    with pytest.raises(SessionError, match="already exists"):
        store.create("notes")
    with pytest.raises(SessionError, match="not a turbo-tui session"):
        store.delete("notes")
    assert "not a turbo-tui session" in store.list()[0].problem
    assert db.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["session.db"]


def test_migration_from_schema_1(tmp_path):
    # Schema 1, written by hand: the whole result in one JSON blob, no kinds or parents.
    folder = tmp_path / "old"
    (folder / "files" / "turns" / "0001").mkdir(parents=True)
    (folder / "files" / "turns" / "0001" / "v.mp4").write_bytes(b"not really a video")
    conn = sqlite3.connect(folder / "session.db")
    conn.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('app', 'turbo-tui'), ('name', 'old'), ('created_at', '2025-01-01T00:00:00+00:00');
        CREATE TABLE turns (
            id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, status TEXT NOT NULL,
            request_json TEXT NOT NULL, launch_json TEXT NOT NULL DEFAULT '{}', result_json TEXT,
            error TEXT, starred INTEGER NOT NULL DEFAULT 0, note TEXT NOT NULL DEFAULT '');
        PRAGMA user_version = 1;
    """)
    result = {"video_paths": ["turns/0001/v.mp4"], "timings": {"denoise": 2.5}, "total_s": 3.0,
              "peak_memory_bytes": 1000, "width": 64, "height": 48, "num_frames": 5, "device": "cpu"}
    conn.execute("INSERT INTO turns VALUES (1, '2025-01-01T00:00:01+00:00', 'done', ?, '{\"model\": \"tiny\"}', ?, "
                 "NULL, 1, 'keeper')", (json.dumps({"prompt": "old cat", "seed": 3}), json.dumps(result)))
    conn.execute("INSERT INTO turns VALUES (2, '2025-01-01T00:00:02+00:00', 'running', ?, '{}', NULL, NULL, 0, '')",
                 (json.dumps({"prompt": "cut off"}),))
    conn.commit()
    conn.close()

    with SessionStore(tmp_path).open("old") as s:
        assert s._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        one, two = s.turns()
        assert (one.kind, one.parent_id, one.status, one.prompt, one.starred, one.note) == (
            "turn", None, "done", "old cat", True, "keeper")
        assert dict(one.timings) == {"denoise": 2.5} and one.total_s == 3.0 and one.width == 64
        assert one.videos[0].rel == "turns/0001/v.mp4" and Path(one.videos[0].path).is_file()
        assert one.launch == {"model": "tiny"}
        assert two.status == "interrupted"
        s.fail_turn(s.begin_turn({"prompt": "new"}, parent_id=1, kind="fork"), "x")  # new columns work
    check_file(folder / "session.db")


def test_newer_schema_is_refused(tmp_path):
    db = _session_with_turns(tmp_path, n=1)
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(SessionError, match="newer turbo-tui"):
        SessionStore(tmp_path).open("s")
    assert db.read_bytes() == before
    assert not os.path.exists(str(db) + "-journal")


def test_work_folders_of_killed_processes_are_swept(tmp_path):
    store = SessionStore(tmp_path)
    store.create("s").close()
    old = tmp_path / ".lost.0123abcd.importing"
    fresh = tmp_path / ".busy.89abcdef.creating"
    for d in (old, fresh):
        (d / "files").mkdir(parents=True)
    os.utime(old, (0, 0))  # left by a process killed long ago
    assert [i.name for i in store.list()] == ["s"]
    assert not old.exists() and fresh.exists()  # a fresh one may belong to a live process
    aside = tmp_path / "s" / "files" / "turns" / ".0003.0123abcd.deleting"
    aside.mkdir(parents=True)
    store.open("s").close()
    assert not aside.exists()
