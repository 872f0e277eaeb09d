"""Export, the HTML gallery, the reel, and importing (including hostile archives)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from PIL import Image

from engine.api import TurnRequest
from engine.errors import SessionError
from sessions import ImportLimits, SessionStore, export_session, fork_request, import_session, make_reel, run_turn
from sessions.files import sha256_file
from sessions.media import iter_frames
from sessions.testing import PatternEngine, write_test_video

CHROMIUM = "/usr/bin/chromium"
HOSTILE_PROMPT = 'a "quoted" <script>alert(1)</script> & friends'


def request(prompt: str, **kw) -> TurnRequest:
    return TurnRequest(prompt=prompt, resolution="192p", num_frames=5, **kw)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A closed session 'demo' with: a T2V turn, an I2V turn, a failed turn, a starred fork."""
    base = tmp_path_factory.mktemp("made")
    img = base / "cond.png"
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(img)
    store = SessionStore(base / "root")
    eng = PatternEngine()
    with store.create("demo") as s:
        t1 = run_turn(s, request(HOSTILE_PROMPT, seed=1), eng)
        run_turn(s, request("a kite over the sea", seed=2, image_path=str(img)), eng)
        s.fail_turn(s.begin_turn(request("never made")), "device out of memory")
        t4 = run_turn(s, fork_request(s.get(t1), seed=4), eng, parent_id=t1, kind="fork")
        s.star(t4)
        s.note(t4, "best <one>")
        records = s.turns()
    return store, records


def _tree(path: Path) -> dict[str, int]:
    return {p.relative_to(path).as_posix(): (p.stat().st_size if p.is_file() else -1) for p in path.rglob("*")}


def _checksums(records) -> list[list[str]]:
    files = lambda r: [*r.videos, *(f for f in (r.thumbnail, r.input_image) if f)]  # noqa: E731
    return [[sha256_file(f.path) for f in files(r)] for r in records]


def test_export_zip_then_import_gives_the_same_turns_and_files(made, tmp_path):
    store, records = made
    with store.open("demo", readonly=True) as s:
        out = export_session(s, tmp_path / "demo.zip")
    assert out == tmp_path / "demo.zip" and zipfile.is_zipfile(out)
    with import_session(store, out) as imp:
        assert imp.name == "demo-2"  # the exported name was taken
        got = imp.turns()
    assert [r.to_dict() for r in got] == [r.to_dict() for r in records]
    assert _checksums(got) == _checksums(records)
    assert all(Path(f.path).is_relative_to(store.root / "demo-2") for r in got for f in r.videos)
    store.delete("demo-2")


def test_export_chosen_turns_to_a_folder(made, tmp_path):
    store, records = made
    with store.open("demo", readonly=True) as s:
        out = export_session(s, tmp_path / "pick", turn_ids=[4, 2])
    manifest = json.loads((out / "session.json").read_text())
    assert (manifest["format"], manifest["version"]) == ("turbo-tui-session", 1)
    assert [t["id"] for t in manifest["turns"]] == [4, 2]
    assert manifest["turns"][0]["parent_id"] is None  # turn 1 was not exported
    for t in manifest["turns"]:
        for v in t["videos"]:
            assert sha256_file(out / v["path"]) == v["sha256"]
    assert not (out / "files" / "turns" / "0001").exists()
    with pytest.raises(SessionError, match="already exists"):
        with store.open("demo", readonly=True) as s:
            export_session(s, out)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href", "poster", "srcset", "data", "action", "background") and v is not None:
                self.refs.append(v)


def test_gallery_references_only_files_inside_the_export(made, tmp_path):
    store, records = made
    with store.open("demo", readonly=True) as s:
        out = export_session(s, tmp_path / "g", reel=True)
    page = (out / "index.html").read_text(encoding="utf-8")
    parser = _Refs()
    parser.feed(page)
    assert parser.refs and "script" not in parser.tags and "link" not in parser.tags
    root = out.resolve()
    for ref in parser.refs:
        u = urlparse(ref)
        assert not u.scheme and not u.netloc and not ref.startswith("/"), ref
        target = (out / unquote(u.path)).resolve()
        assert target.is_relative_to(root) and target.is_file(), ref
    assert "url(" not in page and "@import" not in page
    assert parser.tags.count("video") == sum(len(r.videos) for r in records) == 3
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert "best &lt;one&gt;" in page and "device out of memory" in page


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="chromium is not installed (CI installs it)")
def test_gallery_renders_in_headless_chromium(made, tmp_path):
    store, records = made
    with store.open("demo", readonly=True) as s:
        out = export_session(s, tmp_path / "web")
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (out / "index.html").as_uri()],
        capture_output=True, text=True, timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert dom.count("<video") == len([r for r in records if r.videos]) == 3
    assert "Turn 4 (fork of turn 1)" in dom


def test_reel_joins_turns_in_order_on_a_common_even_size(tmp_path):
    a = write_test_video(tmp_path / "a.mp4", seed=1, n=3, width=64, height=48)
    b = write_test_video(tmp_path / "b.mp4", seed=2, n=2, width=40, height=36)
    reel = make_reel([b, a], tmp_path / "reel.mp4")
    frames = list(iter_frames(reel))
    assert len(frames) == 5 and frames[0].shape == (48, 64, 3)
    assert frames[0][:5].max() < 40  # b is padded onto black, centred
    with pytest.raises(SessionError):
        make_reel([], tmp_path / "none.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4", "reel.mp4"]


# ---------------------------------------------------------------------------
# Hostile archives: refused before anything is written, and never outside the target


def _copy_zip(src: Path, dst: Path, *, skip=(), extra=(), manifest=None) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in skip:
                continue
            data = zin.read(info)
            if info.filename == "session.json" and manifest is not None:
                data = json.dumps(manifest(json.loads(data))).encode()
            zout.writestr(info, data)
        for info, data in extra:
            zout.writestr(info, data)
    return dst


def _patch_declared_size(path: Path, member: str, size: int) -> None:
    data = bytearray(path.read_bytes())
    name = member.encode()
    pos = data.find(b"PK\x01\x02" + b"")
    while pos != -1:
        n = int.from_bytes(data[pos + 28:pos + 30], "little")
        if bytes(data[pos + 46:pos + 46 + n]) == name:
            data[pos + 24:pos + 28] = size.to_bytes(4, "little")  # central directory: uncompressed size
            path.write_bytes(bytes(data))
            return
        pos = data.find(b"PK\x01\x02", pos + 4)
    raise AssertionError(member)


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.fixture(scope="module")
def good_zip(made, tmp_path_factory):
    store, _ = made
    with store.open("demo", readonly=True) as s:
        return export_session(s, tmp_path_factory.mktemp("good") / "demo.zip")


def _video_member(zip_path: Path) -> str:
    with zipfile.ZipFile(zip_path) as z:
        return next(n for n in z.namelist() if n.endswith(".mp4"))


@pytest.mark.parametrize("case", [
    "zip-slip", "zip-slip-nested", "absolute", "backslash", "symlink", "huge-declared", "bomb",
    "total-limit", "manifest-path", "manifest-version", "no-manifest", "bad-request", "checksum",
])
def test_hostile_archive_is_refused_and_nothing_is_written(good_zip, tmp_path, case):
    evil = tmp_path / "in" / "evil.zip"
    evil.parent.mkdir()
    root = tmp_path / "deep" / "root"
    root.mkdir(parents=True)
    outside = tmp_path / "abs-target.txt"
    limits = ImportLimits()
    video = _video_member(good_zip)
    if case == "zip-slip":
        _copy_zip(good_zip, evil, extra=[(zipfile.ZipInfo("../evil.txt"), b"pwned")])
    elif case == "zip-slip-nested":
        _copy_zip(good_zip, evil, extra=[(zipfile.ZipInfo("files/../../../evil.txt"), b"pwned")])
    elif case == "absolute":
        _copy_zip(good_zip, evil, extra=[(zipfile.ZipInfo(str(outside)), b"pwned")])
    elif case == "backslash":
        _copy_zip(good_zip, evil, extra=[(zipfile.ZipInfo("..\\..\\evil.txt"), b"pwned")])
    elif case == "symlink":
        _copy_zip(good_zip, evil, extra=[(_symlink("files/turns/0001/link.mp4"), str(outside).encode())])
    elif case == "huge-declared":
        _copy_zip(good_zip, evil)
        _patch_declared_size(evil, video, 0xF0000000)  # ~4 GB claimed for a small video
    elif case == "bomb":
        info = zipfile.ZipInfo("files/zeros.bin")
        info.compress_type = zipfile.ZIP_DEFLATED
        _copy_zip(good_zip, evil, extra=[(info, bytes(3 * 2**20))])
    elif case == "total-limit":
        shutil.copy(good_zip, evil)
        limits = ImportLimits(max_total_bytes=10_000)
    elif case == "manifest-path":
        def hack(m):
            m["turns"][0]["videos"][0]["path"] = "files/../../outside.mp4"
            return m
        _copy_zip(good_zip, evil, manifest=hack)
    elif case == "manifest-version":
        _copy_zip(good_zip, evil, manifest=lambda m: {**m, "version": 99})
    elif case == "no-manifest":
        _copy_zip(good_zip, evil, skip={"session.json"})
    elif case == "bad-request":
        def hack(m):
            m["turns"][0]["request"]["num_steps"] = 99
            return m
        _copy_zip(good_zip, evil, manifest=hack)
    elif case == "checksum":
        with zipfile.ZipFile(good_zip) as z:
            data = bytearray(z.read(video))
        data[-1] ^= 0xFF
        _copy_zip(good_zip, evil, skip={video}, extra=[(zipfile.ZipInfo(video), bytes(data))])
    before = _tree(tmp_path)
    store = SessionStore(root)
    with pytest.raises(SessionError) as err:
        import_session(store, evil, limits=limits)
    assert "\n" not in str(err.value)
    assert _tree(tmp_path) == before  # nothing written, not even inside the store
    assert not outside.exists() and not (tmp_path / "evil.txt").exists()
    assert store.list() == []


def test_import_refuses_a_taken_name_and_non_zips(good_zip, tmp_path):
    store = SessionStore(tmp_path)
    store.create("taken").close()
    with pytest.raises(SessionError, match="already exists"):
        import_session(store, good_zip, name="taken")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(SessionError, match="not a readable zip"):
        import_session(store, junk)
    with import_session(store, good_zip, name="copy") as s:
        assert s.name == "copy" and len(s) == 4 and s.meta["imported_from"] == "demo.zip"
