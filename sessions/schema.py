"""The session database: its schema, the checks made before touching a file, and migrations.

``PRAGMA user_version`` holds the schema version.  A ``meta`` table whose ``app`` row
is ``turbo-tui`` marks the file as ours: any other SQLite file is refused and left
exactly as it was.  Migrations run forward, one version at a time, each inside one
transaction, so a crash mid-migration leaves the previous version intact.

History:
  1  ``turns`` with the whole result in one ``result_json`` blob.
  2  results split into columns; ``kind``/``parent_id`` (replays and forks form a
     tree), ``input_image``, ``finished_at``, ``replay_match``; an index on parents.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Callable

from engine.errors import SessionError

APP_MARKER = "turbo-tui"
SCHEMA_VERSION = 2
SQLITE_HEADER = b"SQLite format 3\x00"

STATUSES = ("running", "done", "failed", "cancelled", "interrupted")
KINDS = ("turn", "replay", "fork")

_TURNS_V2 = """
CREATE TABLE turns (
    id                INTEGER PRIMARY KEY,
    kind              TEXT NOT NULL DEFAULT 'turn' CHECK (kind IN ('turn', 'replay', 'fork')),
    parent_id         INTEGER REFERENCES turns(id) ON DELETE SET NULL,
    status            TEXT NOT NULL
                      CHECK (status IN ('running', 'done', 'failed', 'cancelled', 'interrupted')),
    created_at        TEXT NOT NULL,
    finished_at       TEXT,
    prompt            TEXT NOT NULL,
    request_json      TEXT NOT NULL,          -- TurnRequest.to_dict(), exactly as asked
    launch_json       TEXT NOT NULL DEFAULT '{}',
    input_image_json  TEXT,                   -- {"path", "sha256", "size"}, path under files/
    ran_request_json  TEXT,                   -- TurnResult.request (sigma_max filled in)
    videos_json       TEXT NOT NULL DEFAULT '[]',
    thumbnail_json    TEXT,
    timings_json      TEXT NOT NULL DEFAULT '{}',
    total_s           REAL,
    peak_memory_bytes INTEGER,
    width             INTEGER,
    height            INTEGER,
    num_frames        INTEGER,
    device            TEXT,
    error             TEXT,
    starred           INTEGER NOT NULL DEFAULT 0,
    note              TEXT NOT NULL DEFAULT '',
    replay_match      INTEGER                 -- replays: 1 same video, 0 different, NULL unknown
)
"""

_SCHEMA_V2 = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    _TURNS_V2,
    "CREATE INDEX turns_parent ON turns(parent_id)",
]


def check_file(db_path: Path) -> None:
    """Refuse, without writing anything, a file that is not a turbo-tui session database.

    Raises :class:`SessionError` with a one-line message for a corrupt file, a foreign
    SQLite file, or a schema newer than this program knows.
    """
    try:
        with open(db_path, "rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except OSError as e:
        raise SessionError(f"{db_path}: cannot read the session database ({e.strerror})") from None
    if header != SQLITE_HEADER:
        raise SessionError(f"{db_path}: not an SQLite database (corrupt or foreign file); left untouched")
    try:
        # Read-only, so that nothing, not even a journal-mode change, touches the file.
        conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise SessionError(f"{db_path}: cannot open the session database ({e}); left untouched") from None
    try:
        ok = conn.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            detail = " ".join(ok.replace("*** in database main ***", "").split())[:160]
            raise SessionError(f"{db_path}: the session database is corrupt ({detail}); left untouched")
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        marker = conn.execute("SELECT value FROM meta WHERE key = 'app'").fetchone() if has_meta else None
        if not marker or marker[0] != APP_MARKER:
            raise SessionError(
                f"{db_path}: an SQLite database that is not a turbo-tui session; refusing to touch it"
            )
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SessionError(
                f"{db_path}: written by a newer turbo-tui (schema {version}, this one knows {SCHEMA_VERSION}); "
                "upgrade turbo-tui to open it"
            )
        if version < 1:
            raise SessionError(f"{db_path}: turbo-tui session with no schema version; refusing to touch it")
    except sqlite3.DatabaseError as e:
        detail = " ".join(str(e).split())[:160]
        raise SessionError(f"{db_path}: the session database is corrupt ({detail}); left untouched") from None
    finally:
        conn.close()


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def create(conn: sqlite3.Connection, meta: dict[str, str]) -> None:
    """Write the current schema into an empty database (inside one transaction)."""
    conn.execute("BEGIN IMMEDIATE")
    for stmt in _SCHEMA_V2:
        conn.execute(stmt)
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)", [("app", APP_MARKER), *sorted(meta.items())]
    )
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.execute("COMMIT")


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    rows = conn.execute(
        "SELECT id, created_at, status, request_json, launch_json, result_json, error, starred, note "
        "FROM turns ORDER BY id"
    ).fetchall()
    conn.execute("ALTER TABLE turns RENAME TO turns_v1")
    conn.execute(_TURNS_V2)
    conn.execute("CREATE INDEX turns_parent ON turns(parent_id)")
    for tid, created, status, req_json, launch_json, result_json, error, starred, note in rows:
        request = json.loads(req_json)
        result = json.loads(result_json) if result_json else {}
        videos = [{"path": p, "sha256": None, "size": None} for p in result.get("video_paths", [])]
        thumb = result.get("thumbnail_path")
        conn.execute(
            "INSERT INTO turns (id, kind, status, created_at, finished_at, prompt, request_json, launch_json, "
            "videos_json, thumbnail_json, timings_json, total_s, peak_memory_bytes, width, height, num_frames, "
            "device, error, starred, note) VALUES (?, 'turn', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                tid, status if status in STATUSES else "interrupted", created, result.get("finished_at"),
                str(request.get("prompt", "")), req_json, launch_json or "{}", json.dumps(videos),
                json.dumps({"path": thumb, "sha256": None, "size": None}) if thumb else None,
                json.dumps(result.get("timings", {})), result.get("total_s"), result.get("peak_memory_bytes"),
                result.get("width"), result.get("height"), result.get("num_frames"), result.get("device"),
                error, int(bool(starred)), note or "",
            ),
        )
    conn.execute("DROP TABLE turns_v1")


# version N -> function that upgrades a database from N to N + 1
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_1_to_2}


def migrate(conn: sqlite3.Connection, db_path: Path) -> None:
    """Bring the database up to :data:`SCHEMA_VERSION`, one transaction per step."""
    version = schema_version(conn)
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise SessionError(f"{db_path}: no migration from schema {version}; left untouched")
        try:
            conn.execute("BEGIN IMMEDIATE")
            step(conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except (sqlite3.Error, ValueError, KeyError, TypeError) as e:
            conn.execute("ROLLBACK")
            raise SessionError(f"{db_path}: migrating schema {version} to {version + 1} failed ({e}); "
                               "the database is unchanged") from None
        version += 1
