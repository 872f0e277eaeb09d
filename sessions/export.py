"""Export a session (or chosen turns) to a folder or a ``.zip``.

Layout of an export (a zip holds the same entries at its root)::

    session.json      manifest (MANIFEST_FORMAT, MANIFEST_VERSION), paths relative to the export
    index.html        self-contained gallery
    reel.mp4          optional: the chosen turns' videos, in order
    files/...         videos, thumbnails and input images, as laid out in the session

The export is assembled under a hidden ``.partial`` name and renamed into place at the
end, so an interrupted export never looks finished; an existing target is never replaced.
"""

from __future__ import annotations

import os
import secrets
import shutil
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from engine.errors import SessionError
from sessions.files import atomic_copy, atomic_write_bytes, fsync_dir
from sessions.gallery import render_gallery
from sessions.media import make_reel, write_thumbnail
from sessions.store import Session, StoredFile, TurnRecord, to_json

MANIFEST_FORMAT = "turbo-tui-session"
MANIFEST_VERSION = 1
MANIFEST_NAME = "session.json"
GALLERY_NAME = "index.html"
REEL_NAME = "reel.mp4"
FILES_PREFIX = "files/"
# Already-compressed media are stored as they are; deflating them costs time for nothing.
_STORED_SUFFIXES = {".mp4", ".png", ".jpg", ".jpeg", ".webp"}


def select_turns(session: Session, turn_ids: Sequence[int] | None) -> list[TurnRecord]:
    """The chosen turns in the order given (all turns, oldest first, when ``turn_ids`` is None)."""
    if turn_ids is None:
        return session.turns()
    seen: set[int] = set()
    out = []
    for tid in turn_ids:
        if tid not in seen:
            seen.add(tid)
            out.append(session.get(tid))
    if not out:
        raise SessionError("no turns chosen to export")
    return out


def manifest_turn(rec: TurnRecord, included: set[int]) -> dict[str, Any]:
    """A record as manifest data: file paths relative to the export root, parents only if exported."""
    d = rec.to_dict()
    for key in ("input_image", "thumbnail"):
        if d[key] is not None:
            d[key]["path"] = FILES_PREFIX + d[key]["path"]
    for v in d["videos"]:
        v["path"] = FILES_PREFIX + v["path"]
    if d["parent_id"] not in included:
        d["parent_id"] = None
    return d


def export_session(
    session: Session,
    out: str | os.PathLike,
    *,
    turn_ids: Sequence[int] | None = None,
    as_zip: bool | None = None,
    reel: bool = False,
) -> Path:
    """Export to the folder or ``.zip`` ``out`` (zip when ``as_zip`` or ``out`` ends in .zip).

    Returns the path written.  Refuses an existing ``out``.
    """
    out = Path(os.path.expanduser(os.fspath(out)))
    if as_zip is None:
        as_zip = out.suffix.lower() == ".zip"
    if as_zip and out.suffix.lower() != ".zip":
        out = out.with_name(out.name + ".zip")
    if out.exists():
        raise SessionError(f"{out} already exists; choose a new name (exports never replace files)")
    if not out.parent.is_dir():
        raise SessionError(f"{out.parent}: no such folder to export into")
    records = select_turns(session, turn_ids)
    stage = out.with_name(f".{out.stem}.{secrets.token_hex(4)}.partial")
    try:
        stage.mkdir()
        _build(session, records, stage, reel=reel)
        if as_zip:
            tmp_zip = out.with_name(f".{out.name}.{secrets.token_hex(4)}.partial")
            try:
                _zip_folder(stage, tmp_zip)
                os.link(tmp_zip, out)  # unlike rename, fails rather than replaces an existing file
            finally:
                tmp_zip.unlink(missing_ok=True)
        else:
            if out.exists():
                raise FileExistsError(f"{out} appeared while exporting")
            os.rename(stage, out)
        fsync_dir(out.parent)
    except FileExistsError:
        raise SessionError(f"{out} appeared while exporting; not replacing it") from None
    except OSError as e:
        raise SessionError(f"exporting to {out} failed: {e.strerror or e}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


def _build(session: Session, records: list[TurnRecord], stage: Path, *, reel: bool) -> None:
    included = {r.id for r in records}
    turns = []
    for rec in records:
        for f in [*rec.videos, rec.thumbnail, rec.input_image]:
            if f is not None:
                _copy_in(f, stage)
        d = manifest_turn(rec, included)
        if d["thumbnail"] is None and rec.videos:
            d["thumbnail"] = _thumbnail_for(rec, stage)
        turns.append(d)
    reel_rel = None
    if reel:
        videos = [stage / v["path"] for t in turns for v in t["videos"]]
        make_reel(videos, stage / REEL_NAME)
        reel_rel = REEL_NAME
    exported_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "exported_at": exported_at,
        "session": {"name": session.name, "created_at": session.created_at},
        "reel": reel_rel,
        "turns": turns,
    }
    atomic_write_bytes(stage / MANIFEST_NAME, (to_json(manifest) + "\n").encode())
    page = render_gallery(session.name, exported_at, turns, reel=reel_rel)
    atomic_write_bytes(stage / GALLERY_NAME, page.encode())


def _copy_in(f: StoredFile, stage: Path) -> None:
    if not f.path or not os.path.isfile(f.path):
        raise SessionError(f"{f.rel}: missing from the session's files; cannot export it")
    dst = stage / FILES_PREFIX / f.rel
    if not dst.exists():
        atomic_copy(f.path, dst)


def _thumbnail_for(rec: TurnRecord, stage: Path) -> dict[str, Any] | None:
    from sessions.files import sha256_file

    rel = f"{FILES_PREFIX}turns/{rec.id:04d}/{Path(rec.videos[0].rel).stem}.thumb.png"
    try:
        write_thumbnail(rec.videos[0].path, stage / rel)
    except (SessionError, OSError, RuntimeError, ValueError):
        return None
    p = stage / rel
    return {"path": rel, "sha256": sha256_file(p), "size": p.stat().st_size}


def _zip_folder(folder: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "x") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                arc = path.relative_to(folder).as_posix()
                method = zipfile.ZIP_STORED if path.suffix.lower() in _STORED_SUFFIXES else zipfile.ZIP_DEFLATED
                zf.write(path, arc, compress_type=method)
    with open(target, "rb+") as f:
        os.fsync(f.fileno())
