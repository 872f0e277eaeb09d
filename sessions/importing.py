"""Import an exported ``.zip`` as a NEW session, refusing anything unsafe before writing.

Every check runs on the archive's directory and manifest first: member names (no
absolute paths, no ``..``, no backslashes, no symlinks, no duplicates), declared
sizes (per member, in total, and the compression ratio of a zip bomb) and the
manifest itself.  Only then is the session built, in a hidden folder under the
store's root, with each file written through a size-capped, checksum-verified copy;
the folder is renamed into place at the end.  Nothing is written anywhere else.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from engine.api import TurnRequest
from engine.errors import SessionError, ValidationError
from sessions import schema
from sessions.export import FILES_PREFIX, MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION
from sessions.files import fsync_dir, inside, safe_relpath
from sessions.store import DB_NAME, FILES_DIR, Session, SessionStore, check_name, now_iso


@dataclass(frozen=True)
class ImportLimits:
    """Bounds on what an archive may unpack to (declared sizes are checked before reading)."""

    max_member_bytes: int = 2 * 2**30
    max_total_bytes: int = 8 * 2**30
    max_members: int = 20_000
    max_manifest_bytes: int = 64 * 2**20
    max_ratio: int = 200  # uncompressed / compressed, for members over 1 MiB


def import_session(
    store: SessionStore, zip_path: str | os.PathLike, name: str | None = None,
    limits: ImportLimits = ImportLimits(),
) -> Session:
    """Import ``zip_path`` as a new session named ``name`` (default: the exported name, made unique)."""
    zip_path = Path(os.path.expanduser(os.fspath(zip_path)))
    if not zip_path.is_file():
        raise SessionError(f"{zip_path}: no such file to import")
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise SessionError(f"{zip_path}: not a readable zip archive ({e})") from None
    with zf:
        members = _check_members(zf, zip_path, limits)
        manifest = _read_manifest(zf, members, zip_path, limits)
        turns = _check_manifest(manifest, members, zip_path)
        if name is None:
            exported = manifest["session"].get("name") if isinstance(manifest.get("session"), dict) else None
            base = exported if isinstance(exported, str) and _valid_name(exported) else zip_path.stem
            name = store.unused_name(base if _valid_name(base) else "imported")
        check_name(name)
        if store.path_of(name).exists():
            raise SessionError(f"session '{name}' already exists in {store.root}; choose another --name")
        return _build(store, name, zf, members, turns, zip_path, limits)


def _valid_name(name: str) -> bool:
    try:
        check_name(name)
        return True
    except SessionError:
        return False


def _check_members(zf: zipfile.ZipFile, zip_path: Path, limits: ImportLimits) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise SessionError(f"{zip_path}: {len(infos)} entries is more than the {limits.max_members} allowed")
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        name = info.filename
        what = f"{zip_path}: entry"
        if name.endswith("/"):
            safe_relpath(name.rstrip("/"), what=what)
            continue
        safe_relpath(name, what=what)
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0 where the archiver recorded no file type
        if kind and kind != stat.S_IFREG:
            raise SessionError(f"{zip_path}: entry {name!r} is a link or special file; refusing the archive")
        if name in members:
            raise SessionError(f"{zip_path}: entry {name!r} appears twice; refusing the archive")
        if info.file_size > limits.max_member_bytes:
            raise SessionError(f"{zip_path}: entry {name!r} would unpack to {info.file_size} bytes, more than "
                               f"the {limits.max_member_bytes} allowed; refusing the archive")
        if info.file_size > 2**20 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise SessionError(f"{zip_path}: entry {name!r} compresses {info.file_size // max(info.compress_size, 1)}:1 "
                               "(a zip bomb?); refusing the archive")
        total += info.file_size
        if total > limits.max_total_bytes:
            raise SessionError(f"{zip_path}: would unpack to more than {limits.max_total_bytes} bytes; "
                               "refusing the archive")
        members[name] = info
    return members


def _read_manifest(zf: zipfile.ZipFile, members: Mapping[str, zipfile.ZipInfo], zip_path: Path,
                   limits: ImportLimits) -> dict[str, Any]:
    info = members.get(MANIFEST_NAME)
    if info is None:
        raise SessionError(f"{zip_path}: no {MANIFEST_NAME} (not a turbo-tui session export)")
    if info.file_size > limits.max_manifest_bytes:
        raise SessionError(f"{zip_path}: {MANIFEST_NAME} is larger than {limits.max_manifest_bytes} bytes")
    try:
        with zf.open(info) as f:
            data = json.loads(f.read(limits.max_manifest_bytes + 1).decode("utf-8"))
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError, OSError) as e:
        raise SessionError(f"{zip_path}: {MANIFEST_NAME} is not readable JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise SessionError(f"{zip_path}: {MANIFEST_NAME} is not a turbo-tui session manifest")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SessionError(f"{zip_path}: manifest version {version!r} is not valid")
    if version > MANIFEST_VERSION:
        raise SessionError(f"{zip_path}: manifest version {version} is newer than this turbo-tui reads "
                           f"({MANIFEST_VERSION}); upgrade turbo-tui")
    return data


def _type(value: Any, types: tuple, what: str, zip_path: Path) -> Any:
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        names = "/".join("null" if t is type(None) else t.__name__ for t in types)
        raise SessionError(f"{zip_path}: manifest {what} = {value!r:.80} should be {names}")
    return value


def _file_entry(value: Any, what: str, members: Mapping[str, zipfile.ZipInfo], zip_path: Path) -> dict | None:
    if value is None:
        return None
    _type(value, (dict,), what, zip_path)
    path = _type(value.get("path"), (str,), f"{what}.path", zip_path)
    safe_relpath(path, what=f"{zip_path}: manifest {what}.path")
    if not path.startswith(FILES_PREFIX):
        raise SessionError(f"{zip_path}: manifest {what}.path {path!r} is not under {FILES_PREFIX}")
    if path not in members:
        raise SessionError(f"{zip_path}: manifest {what}.path {path!r} is missing from the archive")
    sha = _type(value.get("sha256"), (str, type(None)), f"{what}.sha256", zip_path)
    if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise SessionError(f"{zip_path}: manifest {what}.sha256 is not a sha256 hex digest")
    return {"path": path, "sha256": sha, "size": members[path].file_size}


def _check_manifest(manifest: Mapping[str, Any], members: Mapping[str, zipfile.ZipInfo],
                    zip_path: Path) -> list[dict[str, Any]]:
    """Validate every turn; return them as rows ready for Session._insert_record (paths under files/)."""
    raw = _type(manifest.get("turns"), (list,), "turns", zip_path)
    out: list[dict[str, Any]] = []
    ids: set[int] = set()
    for n, t in enumerate(raw):
        w = f"turns[{n}]"
        _type(t, (dict,), w, zip_path)
        tid = _type(t.get("id"), (int,), f"{w}.id", zip_path)
        if tid < 1 or tid in ids:
            raise SessionError(f"{zip_path}: manifest {w}.id {tid} is not a new positive id")
        ids.add(tid)
        status = t.get("status")
        if status not in schema.STATUSES:
            raise SessionError(f"{zip_path}: manifest {w}.status {status!r} is not one of {', '.join(schema.STATUSES)}")
        kind = t.get("kind", "turn")
        if kind not in schema.KINDS:
            raise SessionError(f"{zip_path}: manifest {w}.kind {kind!r} is not one of {', '.join(schema.KINDS)}")
        request = _type(t.get("request"), (dict,), f"{w}.request", zip_path)
        try:
            TurnRequest.from_dict(request).validate(check_files=False)
        except (ValidationError, TypeError) as e:
            raise SessionError(f"{zip_path}: manifest {w}.request: {e}") from None
        videos = [_file_entry(v, f"{w}.videos[{i}]", members, zip_path)
                  for i, v in enumerate(_type(t.get("videos", []), (list,), f"{w}.videos", zip_path))]
        timings = _type(t.get("timings") or {}, (dict,), f"{w}.timings", zip_path)
        for k, v in timings.items():
            _type(v, (int, float, type(None)), f"{w}.timings.{k}", zip_path)
        row = {
            "id": tid, "kind": kind, "parent_id": _type(t.get("parent_id"), (int, type(None)), f"{w}.parent_id", zip_path),
            # a turn still running in the exporting process never finished here
            "status": "interrupted" if status == "running" else status,
            "created_at": _type(t.get("created_at") or now_iso(), (str,), f"{w}.created_at", zip_path),
            "finished_at": _type(t.get("finished_at"), (str, type(None)), f"{w}.finished_at", zip_path),
            "request": request,
            "launch": _type(t.get("launch") or {}, (dict,), f"{w}.launch", zip_path),
            "input_image": _file_entry(t.get("input_image"), f"{w}.input_image", members, zip_path),
            "ran_request": _type(t.get("ran_request"), (dict, type(None)), f"{w}.ran_request", zip_path),
            "videos": videos,
            "thumbnail": _file_entry(t.get("thumbnail"), f"{w}.thumbnail", members, zip_path),
            "timings": timings,
            "total_s": _type(t.get("total_s"), (int, float, type(None)), f"{w}.total_s", zip_path),
            "peak_memory_bytes": _type(t.get("peak_memory_bytes"), (int, type(None)), f"{w}.peak_memory_bytes", zip_path),
            "width": _type(t.get("width"), (int, type(None)), f"{w}.width", zip_path),
            "height": _type(t.get("height"), (int, type(None)), f"{w}.height", zip_path),
            "num_frames": _type(t.get("num_frames"), (int, type(None)), f"{w}.num_frames", zip_path),
            "device": _type(t.get("device"), (str, type(None)), f"{w}.device", zip_path),
            "error": _type(t.get("error"), (str, type(None)), f"{w}.error", zip_path),
            "starred": bool(_type(t.get("starred", False), (bool,), f"{w}.starred", zip_path)),
            "note": _type(t.get("note") or "", (str,), f"{w}.note", zip_path),
            "replay_match": _type(t.get("replay_match"), (bool, type(None)), f"{w}.replay_match", zip_path),
        }
        out.append(row)
    for row in out:
        if row["parent_id"] not in ids:
            row["parent_id"] = None
        if row["kind"] != "turn" and row["parent_id"] is None:
            row["kind"] = "turn"  # its original was not exported
    return sorted(out, key=lambda r: r["id"])


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, files_dir: Path, sha256: str | None,
             limits: ImportLimits, zip_path: Path) -> None:
    rel = PurePosixPath(info.filename[len(FILES_PREFIX):])
    target = inside(files_dir, safe_relpath(rel.as_posix(), what=f"{zip_path}: entry"))
    target.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    written = 0
    with zf.open(info) as src, open(target, "xb") as dst:
        while chunk := src.read(1 << 20):
            written += len(chunk)
            if written > min(info.file_size, limits.max_member_bytes):
                raise SessionError(f"{zip_path}: entry {info.filename!r} unpacks to more than it declares")
            h.update(chunk)
            dst.write(chunk)
    if sha256 is not None and h.hexdigest() != sha256:
        raise SessionError(f"{zip_path}: entry {info.filename!r} does not match its checksum (damaged archive)")


def _build(store: SessionStore, name: str, zf: zipfile.ZipFile, members: Mapping[str, zipfile.ZipInfo],
           turns: list[dict[str, Any]], zip_path: Path, limits: ImportLimits) -> Session:
    store.root.mkdir(parents=True, exist_ok=True)
    tmp = store.root / f".{name}.{secrets.token_hex(4)}.importing"
    try:
        tmp.mkdir()
        files_dir = tmp / FILES_DIR
        files_dir.mkdir()
        done: set[str] = set()
        rows = []
        for t in turns:
            for f in [*t["videos"], t["thumbnail"], t["input_image"]]:
                if f is None:
                    continue
                if f["path"] not in done:
                    _extract(zf, members[f["path"]], files_dir, f["sha256"], limits, zip_path)
                    done.add(f["path"])
                f["path"] = f["path"][len(FILES_PREFIX):]  # stored relative to files/
            rows.append(t)
        conn = sqlite3.connect(tmp / DB_NAME, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            schema.create(conn, {"name": name, "created_at": now_iso(), "imported_from": zip_path.name})
        finally:
            conn.close()
        with Session(tmp) as s, s._db() as c:
            c.execute("BEGIN IMMEDIATE")
            for row in rows:
                s._insert_record(row)
            c.execute("COMMIT")
        final = store.path_of(name)
        if final.exists():
            raise SessionError(f"session '{name}' appeared in {store.root} while importing")
        os.rename(tmp, final)
        fsync_dir(store.root)
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise SessionError(f"importing {zip_path} failed: {e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return store.open(name)
