"""Sessions on disk: a folder per session with ``session.db`` (SQLite, WAL) and ``files/``.

::

    <root>/<name>/session.db        turn records (schema in sessions.schema)
    <root>/<name>/session.lock      held (flock) by the one process that writes the session
    <root>/<name>/files/turns/0007/ where the engine writes turn 7's videos
    <root>/<name>/files/inputs/     copies of I2V input images, named by content

A turn is recorded as ``running`` before generation starts.  The process that opens a
session for writing takes an exclusive lock on ``session.lock``; the kernel drops it
when the process dies, so the next writer knows that any turn still ``running`` was
cut off and marks it ``interrupted``.  Readers (``readonly=True``) take no lock and
never write.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from engine.api import LaunchConfig, TurnRequest, TurnResult
from engine.errors import SessionError
from sessions import schema
from sessions.files import atomic_copy, fsync_dir, inside, safe_relpath, sha256_file, sweep_partials

try:  # POSIX; elsewhere sessions still work, without the guard against two writers
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

DB_NAME = "session.db"
LOCK_NAME = "session.lock"
FILES_DIR = "files"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
INTERRUPTED_MESSAGE = "interrupted: turbo-tui stopped before the turn finished"
# hidden folders of work in progress: creating or importing a session, deleting one or a turn
_WORK_DIR_RE = re.compile(r"^\..+\.[0-9a-f]{8}\.(creating|importing|deleting)$")
STALE_WORK_S = 3600.0


class SessionInUse(SessionError):
    """Another process has the session open for writing."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SessionError(
            f"session name {name!r} is not allowed: 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def to_json(value: Any) -> str:
    """Strict JSON (no NaN/inf): non-finite numbers become null, paths and tuples plain."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, Mapping):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, os.PathLike):
            return os.fspath(v)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return clean(dataclasses.asdict(v))
        if v is None or isinstance(v, (str, int, float, bool)):
            return v
        return str(v)

    return json.dumps(clean(value), allow_nan=False, ensure_ascii=False, sort_keys=True)


def launch_summary(launch: LaunchConfig | Mapping[str, Any], info: Any = None) -> dict[str, Any]:
    """Plain-data summary of what a turn ran with: model, backend, quantization, checkpoints.

    Checkpoints are kept by file name and size only (an export should not carry home
    folder paths).  ``info`` is an optional :class:`engine.api.EngineInfo`, whose device,
    dtype and checkpoints win over the launch configuration's.
    """
    data = dataclasses.asdict(launch) if isinstance(launch, LaunchConfig) else dict(launch)
    roles = {"dit_path": "dit", "high_noise_model_path": "high_noise", "low_noise_model_path": "low_noise",
             "vae_path": "vae", "text_encoder_path": "text_encoder", "tokenizer_path": "tokenizer"}
    out = {k: v for k, v in data.items() if k not in roles and k != "checkpoints"}
    ckpts: dict[str, Any] = {}
    for key, role in roles.items():
        if data.get(key):
            path = str(data[key])
            ckpts[role] = {"name": os.path.basename(path), "size": _size_or_none(path)}
    if info is not None:
        out.update(device=info.device, dtype=info.dtype, attention=info.attention,
                   quant_linear=info.quant_linear, model=info.model)
        for role, c in dict(info.checkpoints).items():
            path = str(c.get("path", "")) if isinstance(c, Mapping) else str(c)
            ckpts[role] = {"name": os.path.basename(path),
                           "size": c.get("size") if isinstance(c, Mapping) else None}
    if ckpts:
        out["checkpoints"] = ckpts
    return out


def _size_or_none(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


# ---------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class StoredFile:
    """A file kept in a session: ``rel`` under the session's ``files/``, ``path`` absolute."""

    rel: str
    path: str
    sha256: str | None
    size: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.rel, "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True)
class TurnRecord:
    """One turn as stored.  Read-only: change a turn through :class:`Session` methods."""

    id: int
    kind: str  # turn | replay | fork
    parent_id: int | None  # the replayed or forked turn
    status: str  # running | done | failed | cancelled | interrupted
    created_at: str  # ISO 8601, UTC
    finished_at: str | None
    prompt: str
    request: Mapping[str, Any]  # TurnRequest.to_dict(), exactly as asked
    launch: Mapping[str, Any]
    input_image: StoredFile | None  # the session's copy of the I2V image
    ran_request: Mapping[str, Any] | None  # TurnResult.request: what the engine ran
    videos: tuple[StoredFile, ...]
    thumbnail: StoredFile | None
    timings: Mapping[str, float]
    total_s: float | None
    peak_memory_bytes: int | None
    width: int | None
    height: int | None
    num_frames: int | None
    device: str | None
    error: str | None
    starred: bool
    note: str
    replay_match: bool | None

    @property
    def video_paths(self) -> tuple[str, ...]:
        return tuple(v.path for v in self.videos)

    def turn_request(self) -> TurnRequest:
        """The stored request as a :class:`TurnRequest`, its image pointing at the session's copy."""
        req = TurnRequest.from_dict(self.request)
        if self.input_image is not None:
            req = req.replace(image_path=self.input_image.path)
        return req

    def to_dict(self) -> dict[str, Any]:
        """Plain data (paths relative to ``files/``), as written in an export manifest."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["request"] = dict(self.request)
        d["launch"] = dict(self.launch)
        d["timings"] = dict(self.timings)
        d["ran_request"] = dict(self.ran_request) if self.ran_request is not None else None
        d["input_image"] = self.input_image.to_dict() if self.input_image else None
        d["thumbnail"] = self.thumbnail.to_dict() if self.thumbnail else None
        d["videos"] = [v.to_dict() for v in self.videos]
        return d


@dataclass(frozen=True)
class SessionInfo:
    """A line of :meth:`SessionStore.list`; ``problem`` is set for a session that cannot be opened."""

    name: str
    path: str
    created_at: str | None
    turns: int
    done: int
    last_turn_at: str | None
    size_bytes: int
    in_use: bool
    problem: str | None = None


_COLUMNS = (
    "id, kind, parent_id, status, created_at, finished_at, prompt, request_json, launch_json, "
    "input_image_json, ran_request_json, videos_json, thumbnail_json, timings_json, total_s, "
    "peak_memory_bytes, width, height, num_frames, device, error, starred, note, replay_match"
)


# ---------------------------------------------------------------------------
# One session


class Session:
    """An open session.  Thread-safe: the app may call it from worker threads.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = Path(path)
        self.name = self.path.name
        self.readonly = readonly
        self.files_dir = self.path / FILES_DIR
        self.db_path = self.path / DB_NAME
        self._lock = threading.RLock()
        self._lock_fd: int | None = None
        self._stale_running = False  # readonly view: nobody is writing, so "running" means cut off
        if not self.db_path.is_file():
            raise SessionError(f"{self.path}: not a turbo-tui session (no {DB_NAME})")
        schema.check_file(self.db_path)
        if readonly:
            self._stale_running = not _lock_held_elsewhere(self.path / LOCK_NAME)
            self._conn = _connect(self.db_path, readonly=True)
            if schema.schema_version(self._conn) < schema.SCHEMA_VERSION:
                self._conn.close()
                raise SessionError(f"session '{self.name}' uses an older schema; open it once for writing "
                                   "(for example `turbo-tui sessions show NAME` when it is not in use) to upgrade it")
            return
        self._lock_fd = _take_lock(self.path / LOCK_NAME, self.name)
        try:
            self._conn = _connect(self.db_path, readonly=False)
            schema.migrate(self._conn, self.db_path)
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._recover()
        except BaseException:
            if hasattr(self, "_conn"):
                self._conn.close()
            _release_lock(self._lock_fd)
            self._lock_fd = None
            raise

    # -- lifecycle --------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]
            _release_lock(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Session({str(self.path)!r}, readonly={self.readonly})"

    @property
    def meta(self) -> dict[str, str]:
        with self._db() as c:
            return dict(c.execute("SELECT key, value FROM meta").fetchall())

    @property
    def created_at(self) -> str | None:
        return self.meta.get("created_at")

    # -- turns: writing ---------------------------------------------------

    def begin_turn(
        self,
        request: Mapping[str, Any] | TurnRequest,
        launch: Mapping[str, Any] | LaunchConfig | None = None,
        parent_id: int | None = None,
        kind: str = "turn",
    ) -> int:
        """Record a turn as ``running`` (call this BEFORE generating); return its id.

        ``request`` is ``TurnRequest.to_dict()`` (or the request itself); an I2V input
        image is copied into the session so that the turn can be replayed later.
        """
        self._writable()
        req = request.to_dict() if isinstance(request, TurnRequest) else dict(request)
        if not isinstance(req.get("prompt"), str):
            raise SessionError("begin_turn: the request needs a text 'prompt'")
        if kind not in schema.KINDS:
            raise SessionError(f"begin_turn: kind {kind!r} is not one of {', '.join(schema.KINDS)}")
        if kind != "turn" and parent_id is None:
            raise SessionError(f"begin_turn: a {kind} needs the parent turn's id")
        launch_d = launch_summary(launch) if isinstance(launch, LaunchConfig) else dict(launch or {})
        image = None
        if req.get("image_path"):
            image = self._file_ref(self.adopt_file(req["image_path"]))
        with self._db() as c:
            if parent_id is not None and not c.execute("SELECT 1 FROM turns WHERE id = ?", (parent_id,)).fetchone():
                raise SessionError(f"session '{self.name}' has no turn {parent_id} to {kind} from")
            c.execute("BEGIN IMMEDIATE")
            cur = c.execute(
                "INSERT INTO turns (kind, parent_id, status, created_at, prompt, request_json, launch_json, "
                "input_image_json) VALUES (?, ?, 'running', ?, ?, ?, ?, ?)",
                (kind, parent_id, now_iso(), req["prompt"], to_json(req), to_json(launch_d),
                 to_json(image.to_dict()) if image else None),
            )
            c.execute("COMMIT")
            return int(cur.lastrowid)

    def finish_turn(
        self,
        turn_id: int,
        result: TurnResult | None = None,
        *,
        video_paths: Iterable[str | os.PathLike] = (),
        thumbnail_path: str | os.PathLike | None = None,
        timings: Mapping[str, float] | None = None,
        total_s: float | None = None,
        peak_memory_bytes: int | None = None,
        width: int | None = None,
        height: int | None = None,
        num_frames: int | None = None,
        device: str | None = None,
        launch: Mapping[str, Any] | None = None,
        ran_request: Mapping[str, Any] | None = None,
    ) -> TurnRecord:
        """Mark a turn ``done`` with its result: a :class:`TurnResult`, or the same fields by keyword.

        Videos outside the session (the engine wrote them elsewhere) are copied in.
        Returns the stored record.
        """
        self._writable()
        if result is not None:
            video_paths, thumbnail_path = result.video_paths, result.thumbnail_path
            timings, total_s, peak_memory_bytes = result.timings, result.total_s, result.peak_memory_bytes
            width, height, num_frames, device = result.width, result.height, result.num_frames, result.device
            launch, ran_request = result.launch, result.request.to_dict()
        rec = self.get(turn_id)
        if rec.status != "running":
            raise SessionError(f"turn {turn_id} is {rec.status}, not running; it cannot be finished")
        out_dir = self.output_dir_for(turn_id)
        videos = [self._file_ref(self._keep(p, out_dir)) for p in video_paths]
        thumb = self._file_ref(self._keep(thumbnail_path, out_dir)) if thumbnail_path else None
        if thumb is None and videos:
            thumb = self._make_thumbnail(videos[0], out_dir)
        merged_launch = {**rec.launch, **dict(launch or {})}
        with self._db() as c:
            c.execute("BEGIN IMMEDIATE")
            c.execute(
                "UPDATE turns SET status = 'done', finished_at = ?, videos_json = ?, thumbnail_json = ?, "
                "timings_json = ?, total_s = ?, peak_memory_bytes = ?, width = ?, height = ?, num_frames = ?, "
                "device = ?, launch_json = ?, ran_request_json = ?, error = NULL WHERE id = ?",
                (now_iso(), to_json([v.to_dict() for v in videos]), to_json(thumb.to_dict()) if thumb else None,
                 to_json(dict(timings or {})), total_s, peak_memory_bytes, width, height, num_frames, device,
                 to_json(merged_launch), to_json(ran_request) if ran_request is not None else None, turn_id),
            )
            c.execute("COMMIT")
        return self.get(turn_id)

    def fail_turn(self, turn_id: int, message: str, status: str = "failed") -> None:
        """Mark a turn ``failed`` or ``cancelled`` with a message for people."""
        self._writable()
        if status not in ("failed", "cancelled", "interrupted"):
            raise SessionError(f"fail_turn: status {status!r} is not failed, cancelled or interrupted")
        self._update(turn_id, "status = ?, error = ?, finished_at = ?", (status, str(message), now_iso()))

    def star(self, turn_id: int, starred: bool = True) -> None:
        self._writable()
        self._update(turn_id, "starred = ?", (int(bool(starred)),))

    def note(self, turn_id: int, text: str) -> None:
        self._writable()
        self._update(turn_id, "note = ?", (str(text),))

    def set_replay_match(self, turn_id: int, matches: bool | None) -> None:
        self._writable()
        self._update(turn_id, "replay_match = ?", (None if matches is None else int(matches),))

    def delete_turn(self, turn_id: int) -> None:
        """Delete a turn and its files; its children stay, with no parent."""
        self._writable()
        rec = self.get(turn_id)
        if rec.status == "running":
            raise SessionError(f"turn {turn_id} is running; cancel it before deleting it")
        with self._db() as c:
            c.execute("BEGIN IMMEDIATE")
            c.execute("DELETE FROM turns WHERE id = ?", (turn_id,))
            c.execute("COMMIT")
        _remove_tree(self.files_dir / "turns" / f"{turn_id:04d}")
        if rec.input_image is not None:
            still_used = any(
                t.input_image is not None and t.input_image.rel == rec.input_image.rel for t in self.turns()
            )
            if not still_used:
                Path(rec.input_image.path).unlink(missing_ok=True)

    # -- turns: reading ---------------------------------------------------

    def get(self, turn_id: int) -> TurnRecord:
        with self._db() as c:
            row = c.execute(f"SELECT {_COLUMNS} FROM turns WHERE id = ?", (int(turn_id),)).fetchone()
        if row is None:
            raise SessionError(f"session '{self.name}' has no turn {turn_id}")
        return self._record(row)

    def turns(
        self, filter_text: str | None = None, starred: bool | None = None, status: str | None = None
    ) -> list[TurnRecord]:
        """Turns, oldest first; ``filter_text`` matches prompt or note, any case."""
        sql, args = f"SELECT {_COLUMNS} FROM turns", []
        where = []
        if starred is not None:
            where.append("starred = ?")
            args.append(int(starred))
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._db() as c:
            rows = c.execute(sql + " ORDER BY id", args).fetchall()
        recs = [self._record(r) for r in rows]
        if filter_text:
            needle = filter_text.casefold()
            recs = [r for r in recs if needle in r.prompt.casefold() or needle in r.note.casefold()]
        return recs

    def children(self, turn_id: int) -> list[TurnRecord]:
        """Replays and forks made from ``turn_id`` (forks form a tree)."""
        with self._db() as c:
            rows = c.execute(f"SELECT {_COLUMNS} FROM turns WHERE parent_id = ? ORDER BY id", (turn_id,)).fetchall()
        return [self._record(r) for r in rows]

    def ancestors(self, turn_id: int) -> list[TurnRecord]:
        """The chain of parents of ``turn_id``, nearest first."""
        out: list[TurnRecord] = []
        seen = {turn_id}
        rec = self.get(turn_id)
        while rec.parent_id is not None and rec.parent_id not in seen:
            seen.add(rec.parent_id)
            try:
                rec = self.get(rec.parent_id)
            except SessionError:
                break
            out.append(rec)
        return out

    def __len__(self) -> int:
        with self._db() as c:
            return c.execute("SELECT COUNT(*) FROM turns").fetchone()[0]

    # -- files --------------------------------------------------------------

    def output_dir_for(self, turn_id: int) -> Path:
        """The folder the engine writes turn ``turn_id``'s files into (created)."""
        d = self.files_dir / "turns" / f"{int(turn_id):04d}"
        if not self.readonly:
            d.mkdir(parents=True, exist_ok=True)
        return d

    def adopt_file(self, path: str | os.PathLike) -> str:
        """Copy a file (an I2V input image) into the session; return its path relative to ``files/``.

        Copies are named by content, so adopting the same image twice keeps one copy.
        """
        self._writable()
        src = Path(os.path.expanduser(os.fspath(path)))
        if self._is_inside(src):
            return src.resolve().relative_to(self.files_dir.resolve()).as_posix()
        if not src.is_file():
            raise SessionError(f"{src}: no such file to keep in the session")
        digest = sha256_file(src)
        suffix = re.sub(r"[^A-Za-z0-9.]", "", src.suffix.lower())[:10]
        rel = f"inputs/{digest[:24]}{suffix}"
        final = self.files_dir / rel
        if not final.exists():
            atomic_copy(src, final)
        return rel

    def resolve(self, rel: str) -> Path:
        """Absolute path of a file stored under ``files/`` (refuses paths leading elsewhere)."""
        return inside(self.files_dir, safe_relpath(rel))

    # -- internals ----------------------------------------------------------

    def _db(self):
        return _Guard(self)

    def _writable(self) -> None:
        if self.readonly:
            raise SessionError(f"session '{self.name}' is open read-only")

    def _update(self, turn_id: int, assignments: str, args: tuple) -> None:
        with self._db() as c:
            c.execute("BEGIN IMMEDIATE")
            cur = c.execute(f"UPDATE turns SET {assignments} WHERE id = ?", (*args, int(turn_id)))
            c.execute("COMMIT")
        if cur.rowcount == 0:
            raise SessionError(f"session '{self.name}' has no turn {turn_id}")

    def _recover(self) -> None:
        """After a crash: turns left running become interrupted; half-written files go."""
        with self._db() as c:
            c.execute("BEGIN IMMEDIATE")
            c.execute("UPDATE turns SET status = 'interrupted', error = ?, finished_at = ? WHERE status = 'running'",
                      (INTERRUPTED_MESSAGE, now_iso()))
            c.execute("COMMIT")
        sweep_partials(self.files_dir)
        turns_dir = self.files_dir / "turns"
        if turns_dir.is_dir():  # a turn folder whose deletion was cut off
            for d in turns_dir.iterdir():
                if _WORK_DIR_RE.match(d.name) and d.name.endswith(".deleting"):
                    shutil.rmtree(d, ignore_errors=True)

    def _is_inside(self, p: Path) -> bool:
        try:
            p.resolve().relative_to(self.files_dir.resolve())
            return True
        except ValueError:
            return False

    def _keep(self, path: str | os.PathLike, out_dir: Path) -> str:
        """Relative path of a result file, copying it into ``out_dir`` when it lies outside the session."""
        p = Path(path)
        if not p.is_file():
            raise SessionError(f"{p}: the turn's output file does not exist")
        if self._is_inside(p):
            return p.resolve().relative_to(self.files_dir.resolve()).as_posix()
        final = out_dir / p.name
        atomic_copy(p, final)
        return final.relative_to(self.files_dir).as_posix()

    def _file_ref(self, rel: str) -> StoredFile:
        p = self.resolve(rel)
        return StoredFile(rel=rel, path=str(p), sha256=sha256_file(p), size=p.stat().st_size)

    def _make_thumbnail(self, video: StoredFile, out_dir: Path) -> StoredFile | None:
        from sessions.media import write_thumbnail

        try:
            final = out_dir / (Path(video.rel).stem + ".thumb.png")
            write_thumbnail(video.path, final)
        except (OSError, RuntimeError, ValueError, SessionError):
            return None  # a thumbnail is a nicety; never fail a turn for it
        return self._file_ref(final.relative_to(self.files_dir).as_posix())

    def _stored(self, data: str | Mapping[str, Any] | None) -> StoredFile | None:
        if not data:
            return None
        d = json.loads(data) if isinstance(data, str) else data
        rel = str(d["path"])
        try:
            path = str(self.resolve(rel))
        except SessionError:
            path = ""  # a bad path in the database is never followed
        return StoredFile(rel=rel, path=path, sha256=d.get("sha256"), size=d.get("size"))

    def _record(self, row: tuple) -> TurnRecord:
        (tid, kind, parent, status, created, finished, prompt, req, launch, image, ran, videos, thumb, timings,
         total_s, peak, w, h, nf, device, error, starred, note, match) = row
        if status == "running" and self._stale_running:
            status, error = "interrupted", INTERRUPTED_MESSAGE
        return TurnRecord(
            id=tid, kind=kind, parent_id=parent, status=status, created_at=created, finished_at=finished,
            prompt=prompt, request=json.loads(req), launch=json.loads(launch), input_image=self._stored(image),
            ran_request=json.loads(ran) if ran else None,
            videos=tuple(self._stored(v) for v in json.loads(videos)),  # type: ignore[misc]
            thumbnail=self._stored(thumb), timings=json.loads(timings), total_s=total_s, peak_memory_bytes=peak,
            width=w, height=h, num_frames=nf, device=device, error=error, starred=bool(starred), note=note,
            replay_match=None if match is None else bool(match),
        )

    def _insert_record(self, d: Mapping[str, Any]) -> None:
        """Insert a turn exactly as given (import); ``d`` is TurnRecord.to_dict()-shaped, checked."""
        j = lambda v: to_json(v) if v is not None else None  # noqa: E731
        with self._db() as c:
            c.execute(
                f"INSERT INTO turns ({_COLUMNS}) VALUES ({', '.join('?' * 24)})",
                (d["id"], d["kind"], d["parent_id"], d["status"], d["created_at"], d["finished_at"],
                 d["request"]["prompt"], to_json(d["request"]), to_json(d["launch"]), j(d["input_image"]),
                 j(d["ran_request"]), to_json(d["videos"]), j(d["thumbnail"]), to_json(d["timings"]),
                 d["total_s"], d["peak_memory_bytes"], d["width"], d["height"], d["num_frames"], d["device"],
                 d["error"], int(d["starred"]), d["note"],
                 None if d["replay_match"] is None else int(d["replay_match"])),
            )


class _Guard:
    """``with session._db() as conn``: serialise threads, turn SQLite errors into SessionError."""

    def __init__(self, session: Session):
        self.s = session

    def __enter__(self) -> sqlite3.Connection:
        self.s._lock.acquire()
        if self.s._conn is None:
            self.s._lock.release()
            raise SessionError(f"session '{self.s.name}' is closed")
        return self.s._conn

    def __exit__(self, et, e, tb) -> bool:
        try:
            if et is not None and self.s._conn is not None and self.s._conn.in_transaction:
                self.s._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        finally:
            self.s._lock.release()
        if et is not None and issubclass(et, sqlite3.Error):
            raise SessionError(f"session '{self.s.name}': database error: {e}") from None
        return False


def _connect(db_path: Path, *, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True,
                                   isolation_level=None, check_same_thread=False, timeout=10)
        else:
            conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False, timeout=10)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")  # turns are seconds apart: durability is cheap
        conn.execute("PRAGMA busy_timeout = 10000")
        return conn
    except sqlite3.Error as e:
        raise SessionError(f"{db_path}: cannot open the session database ({e})") from None


def _take_lock(lock_path: Path, name: str) -> int | None:
    if fcntl is None:  # pragma: no cover
        return None
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SessionInUse(f"session '{name}' is open in another turbo-tui process; close it there first") from None
    return fd


def _release_lock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock


def _lock_held_elsewhere(lock_path: Path) -> bool:
    if fcntl is None or not lock_path.exists():  # pragma: no cover
        return False
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _remove_tree(path: Path) -> None:
    """Delete a folder: rename it aside first so a crash never leaves a half-deleted one in place."""
    if not path.exists():
        return
    aside = path.with_name(f".{path.name}.{secrets.token_hex(4)}.deleting")
    os.rename(path, aside)
    fsync_dir(path.parent)
    shutil.rmtree(aside, ignore_errors=True)


def _dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


# ---------------------------------------------------------------------------
# Many sessions


class SessionStore:
    """The folder that holds the sessions (``Settings.sessions_root``)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(os.path.expanduser(os.fspath(root)))

    def path_of(self, name: str) -> Path:
        return self.root / check_name(name)

    def exists(self, name: str) -> bool:
        return (self.path_of(name) / DB_NAME).exists()

    def create(self, name: str | None = None) -> Session:
        """Create and open a new session (named by the time if ``name`` is None)."""
        if name is None:
            name = self.unused_name(datetime.now().strftime("session-%Y%m%d-%H%M%S"))
        final = self.path_of(name)
        if final.exists():
            raise SessionError(f"session '{name}' already exists in {self.root}")
        self.root.mkdir(parents=True, exist_ok=True)
        # Built in a hidden folder and renamed into place: a crash never leaves half a session.
        tmp = self.root / f".{name}.{secrets.token_hex(4)}.creating"
        try:
            tmp.mkdir()
            (tmp / FILES_DIR).mkdir()
            conn = sqlite3.connect(tmp / DB_NAME, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                schema.create(conn, {"name": name, "created_at": now_iso()})
            finally:
                conn.close()
            os.rename(tmp, final)  # fails (rather than replaces) if a non-empty folder appeared
            fsync_dir(self.root)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise SessionError(f"cannot create session '{name}' in {self.root}: {e.strerror or e}") from None
        return Session(final)

    def open(self, name: str, *, readonly: bool = False) -> Session:
        """Open an existing session; for writing unless ``readonly``.

        Raises :class:`SessionInUse` when another process writes it (open ``readonly``
        to look at it meanwhile) and :class:`SessionError` when it is missing, corrupt
        or not a turbo-tui session.
        """
        path = self.path_of(name)
        if not path.is_dir():
            raise SessionError(f"no session '{name}' in {self.root} (`turbo-tui sessions list` shows them)")
        return Session(path, readonly=readonly)

    def open_or_create(self, name: str) -> Session:
        """Resume the session ``name``, creating it the first time."""
        return self.open(name) if self.path_of(name).exists() else self.create(name)

    def open_for_reading(self, name: str) -> Session:
        """Open for writing when free (which also recovers and migrates), else read-only."""
        try:
            return self.open(name)
        except SessionInUse:
            return self.open(name, readonly=True)

    def list(self) -> list[SessionInfo]:
        """Every session under the root, by name; broken ones carry a ``problem``."""
        if not self.root.is_dir():
            return []
        self._sweep_work_dirs()
        out = []
        for entry in sorted(self.root.iterdir(), key=lambda p: p.name):
            if entry.name.startswith(".") or not entry.is_dir() or not NAME_RE.match(entry.name):
                continue
            if not (entry / DB_NAME).exists():
                continue
            out.append(self._info(entry))
        return out

    def _sweep_work_dirs(self) -> None:
        """Remove hidden work folders left by a process killed an hour or more ago."""
        now = time.time()
        for entry in self.root.iterdir():
            if _WORK_DIR_RE.match(entry.name) and entry.is_dir() and not entry.is_symlink():
                try:
                    if now - entry.stat().st_mtime > STALE_WORK_S:
                        shutil.rmtree(entry, ignore_errors=True)
                except OSError:
                    pass

    def _info(self, path: Path) -> SessionInfo:
        in_use = _lock_held_elsewhere(path / LOCK_NAME)
        size = _dir_size(path)
        try:
            schema.check_file(path / DB_NAME)
            conn = _connect(path / DB_NAME, readonly=True)
            try:
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                n, done, last = conn.execute(
                    "SELECT COUNT(*), SUM(status = 'done'), MAX(created_at) FROM turns").fetchone()
            finally:
                conn.close()
        except (SessionError, sqlite3.Error) as e:
            return SessionInfo(path.name, str(path), None, 0, 0, None, size, in_use, problem=str(e))
        return SessionInfo(path.name, str(path), meta.get("created_at"), n, done or 0, last, size, in_use)

    def delete(self, name: str) -> None:
        """Delete a session and all its files (refused while another process has it open)."""
        path = self.path_of(name)
        if not path.is_dir():
            raise SessionError(f"no session '{name}' in {self.root}")
        if not (path / DB_NAME).exists():
            raise SessionError(f"{path}: not a turbo-tui session (no {DB_NAME}); not deleting it")
        schema.check_file(path / DB_NAME)  # refuses a foreign database rather than deleting it
        fd = _take_lock(path / LOCK_NAME, name)
        try:
            _remove_tree(path)
        finally:
            _release_lock(fd)

    def rename(self, old: str, new: str) -> None:
        src, dst = self.path_of(old), self.path_of(new)
        if not (src / DB_NAME).exists():
            raise SessionError(f"no session '{old}' in {self.root}")
        if dst.exists():
            raise SessionError(f"session '{new}' already exists in {self.root}")
        fd = _take_lock(src / LOCK_NAME, old)
        try:
            os.rename(src, dst)
        finally:
            _release_lock(fd)
        with Session(dst) as s, s._db() as c:
            c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('name', ?)", (new,))

    def unused_name(self, base: str) -> str:
        check_name(base)
        name, n = base, 2
        while self.path_of(name).exists():
            name = f"{base[:58]}-{n}"
            n += 1
        return name
