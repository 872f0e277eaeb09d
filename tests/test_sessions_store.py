"""The session store: turns round-trip, the fork tree, files, names, locking, replay logic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.api import LaunchConfig, TurnRequest, TurnResult
from engine.errors import Cancelled, EngineError, SessionError
from sessions import (
    SessionInUse,
    SessionStore,
    fork_request,
    launch_summary,
    replay_turn,
    run_turn,
)
from sessions.files import sha256_file
from sessions.testing import PatternEngine, write_test_video

REPO = Path(__file__).resolve().parents[1]


def request(prompt: str = "a red fox in snow", **kw) -> TurnRequest:
    return TurnRequest(prompt=prompt, resolution="192p", num_frames=5, **kw)


def test_sessions_import_without_torch():
    code = (
        "import sys\n"
        "import sessions, sessions.export, sessions.importing, sessions.replay, sessions.media\n"
        "import sessions.testing, turbo_tui.commands.sessions\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'triton')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_turn_round_trip(tmp_path):
    store = SessionStore(tmp_path / "root")
    elsewhere = write_test_video(tmp_path / "engine-out" / "clip.mp4", seed=1)
    req = request(seed=42, sla_topk=0.15)
    launch = launch_summary(LaunchConfig(model="tiny", attention="original"))
    with store.create("first") as s:
        tid = s.begin_turn(req.to_dict(), launch)
        rec = s.get(tid)
        assert rec.status == "running" and rec.prompt == req.prompt and rec.finished_at is None
        result = TurnResult(
            request=req.replace(sigma_max=80.0), video_paths=(str(elsewhere),), thumbnail_path=None,
            timings={"encode": 0.5, "denoise": 1.25}, total_s=1.75, peak_memory_bytes=123456,
            width=64, height=48, num_frames=5, launch={"device": "cpu"}, device="cpu",
        )
        done = s.finish_turn(tid, result)
    assert done.status == "done"
    assert TurnRequest.from_dict(done.request) == req
    assert done.ran_request["sigma_max"] == 80.0
    assert done.launch["model"] == "tiny" and done.launch["attention"] == "original" and done.launch["device"] == "cpu"
    assert dict(done.timings) == {"encode": 0.5, "denoise": 1.25}
    assert (done.total_s, done.peak_memory_bytes, done.width, done.height, done.num_frames) == (1.75, 123456, 64, 48, 5)
    # the video was copied into the session, under the turn's folder, and checksummed
    (video,) = done.videos
    assert Path(video.path).parent == tmp_path / "root" / "first" / "files" / "turns" / "0001"
    assert video.sha256 == sha256_file(elsewhere) == sha256_file(video.path)
    assert done.thumbnail is not None and Image.open(done.thumbnail.path).size[0] == 64

    with store.open("first") as s:  # reopened: the same record
        assert s.get(tid) == done
        assert len(s) == 1


def test_finish_with_fields_fail_cancel_star_note_filter(tmp_path):
    with SessionStore(tmp_path).create("s") as s:
        a = s.begin_turn(request("a cat on a sofa"))
        out = write_test_video(s.output_dir_for(a) / "v.mp4")
        s.finish_turn(a, video_paths=[out], timings={"write": 0.1}, total_s=0.1, width=64, height=48, num_frames=5)
        b = s.begin_turn(request("a dog"))
        s.fail_turn(b, "out of memory: try fewer frames")
        c = s.begin_turn(request("a cat in space"))
        s.fail_turn(c, "turn cancelled", status="cancelled")
        with pytest.raises(SessionError):
            s.finish_turn(b, video_paths=[out])  # only a running turn can be finished
        s.star(a)
        s.note(c, "try again with SEED 7")

        assert [t.status for t in s.turns()] == ["done", "failed", "cancelled"]
        assert s.get(a).videos[0].rel == "turns/0001/v.mp4"  # already inside: not copied
        assert s.get(b).error == "out of memory: try fewer frames"
        assert [t.id for t in s.turns(filter_text="CAT")] == [a, c]
        assert [t.id for t in s.turns(filter_text="seed 7")] == [c]  # notes match too
        assert [t.id for t in s.turns(starred=True)] == [a]
        assert [t.id for t in s.turns(status="failed")] == [b]
        s.star(a, False)
        assert s.turns(starred=True) == []
        with pytest.raises(SessionError, match="no turn 99"):
            s.get(99)
        with pytest.raises(SessionError):
            s.fail_turn(a, "x", status="done")


def test_fork_tree_and_delete_turn(tmp_path):
    with SessionStore(tmp_path).create("tree") as s:
        root = s.begin_turn(request())
        s.fail_turn(root, "stopped")
        f1 = s.begin_turn(fork_request(s.get(root), seed=1), parent_id=root, kind="fork")
        f2 = s.begin_turn(fork_request(s.get(root), seed=2), parent_id=root, kind="fork")
        f11 = s.begin_turn(fork_request(s.get(f1), num_steps=2), parent_id=f1, kind="fork")
        for t in (f1, f2, f11):
            s.fail_turn(t, "stopped")
        assert [c.id for c in s.children(root)] == [f1, f2]
        assert [a.id for a in s.ancestors(f11)] == [f1, root]
        assert s.get(f11).request["seed"] == 1 and s.get(f11).request["num_steps"] == 2
        with pytest.raises(SessionError):
            s.begin_turn(request(), parent_id=999, kind="fork")
        with pytest.raises(SessionError):
            s.begin_turn(request(), kind="replay")  # a replay needs its original

        write_test_video(s.output_dir_for(f1) / "v.mp4")
        s.delete_turn(f1)
        assert not s.output_dir_for(f1).joinpath("v.mp4").exists()
        assert s.get(f11).parent_id is None  # orphaned, not deleted
        assert [t.id for t in s.turns()] == [root, f2, f11]


def test_input_image_is_adopted_and_forks_survive_the_original(tmp_path):
    img = tmp_path / "cond.png"
    Image.fromarray(np.full((32, 48, 3), 200, np.uint8)).save(img)
    with SessionStore(tmp_path / "root").create("i2v") as s:
        tid = s.begin_turn(request(image_path=str(img)))
        rec = s.get(tid)
        assert rec.request["image_path"] == str(img)  # as asked
        assert rec.input_image is not None and rec.input_image.rel.startswith("inputs/")
        assert rec.input_image.sha256 == sha256_file(img)
        assert s.adopt_file(img) == rec.input_image.rel  # same content: one copy
        img.unlink()
        fork = fork_request(rec, seed=5)
        assert fork.image_path == rec.input_image.path and Path(fork.image_path).is_file()
        assert rec.turn_request().image_path == rec.input_image.path
        with pytest.raises(SessionError):
            s.adopt_file(tmp_path / "missing.png")
        with pytest.raises(SessionError):
            s.resolve("../session.db")


def test_store_names_list_rename_delete(tmp_path):
    store = SessionStore(tmp_path / "root")
    assert store.list() == []
    for bad in ("", "../x", "a/b", ".hidden", "x" * 65, "sp ace"):
        with pytest.raises(SessionError, match="not allowed"):
            store.create(bad)
    store.create("one").close()
    with pytest.raises(SessionError, match="already exists"):
        store.create("one")
    with store.open_or_create("two") as s:
        s.fail_turn(s.begin_turn(request()), "x")
    auto = store.create()
    auto.close()
    names = [i.name for i in store.list()]
    assert names == sorted(["one", "two", auto.name])
    info = {i.name: i for i in store.list()}["two"]
    assert (info.turns, info.done, info.problem, info.in_use) == (1, 0, None, False)

    store.rename("two", "deux")
    with store.open("deux") as s:
        assert len(s) == 1 and s.meta["name"] == "deux"
    store.delete("deux")
    assert not (tmp_path / "root" / "deux").exists()
    with pytest.raises(SessionError, match="no session"):
        store.open("deux")
    with pytest.raises(SessionError, match="no session"):
        store.delete("deux")
    assert not any(p.name.startswith(".") for p in (tmp_path / "root").iterdir())  # no leftovers


def test_one_writer_and_readonly_views(tmp_path):
    store = SessionStore(tmp_path)
    writer = store.create("busy")
    tid = writer.begin_turn(request())
    with pytest.raises(SessionInUse, match="another turbo-tui process"):
        store.open("busy")
    with pytest.raises(SessionInUse):
        store.delete("busy")
    assert {i.name: i.in_use for i in store.list()} == {"busy": True}
    with store.open_for_reading("busy") as ro:
        assert ro.readonly and ro.get(tid).status == "running"  # really running elsewhere
        with pytest.raises(SessionError, match="read-only"):
            ro.star(tid)
    writer.close()  # the writer went away with the turn still running
    with store.open("busy", readonly=True) as ro:
        assert ro.get(tid).status == "interrupted"  # shown as such, not written
    with store.open("busy") as s:
        assert s.get(tid).status == "interrupted"  # now written


def test_replay_and_run_turn_with_a_deterministic_engine(tmp_path):
    with SessionStore(tmp_path).create("r") as s:
        eng = PatternEngine()
        tid = run_turn(s, request(seed=3), eng)
        new_id, matches = replay_turn(s, tid, eng)
        assert matches is True
        new = s.get(new_id)
        assert (new.kind, new.parent_id, new.replay_match, new.status) == ("replay", tid, True, "done")
        assert new.request == s.get(tid).request
        assert [c.id for c in s.children(tid)] == [new_id]

        other, matches = replay_turn(s, tid, PatternEngine(jitter=True))
        assert matches is False and s.get(other).replay_match is False

        with pytest.raises(EngineError):
            run_turn(s, request(), PatternEngine(fail_with=EngineError("device out of memory")))
        failed = s.turns()[-1]
        assert (failed.status, failed.error) == ("failed", "device out of memory")
        with pytest.raises(Cancelled):
            run_turn(s, request(), PatternEngine(fail_with=Cancelled()))
        assert s.turns()[-1].status == "cancelled"
