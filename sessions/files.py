"""File helpers that never leave a half-written file under its final name.

Every file the sessions package writes goes to a temporary sibling first
(``.NAME.<token>.partial.EXT``), is flushed and fsync'd, and is then moved over
the final name with :func:`os.replace`, which is atomic on POSIX.  A process
killed mid-write leaves at most a ``.partial`` file, which :func:`sweep_partials`
removes the next time the session is opened for writing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator

from engine.errors import SessionError

# ours: .NAME.<8 hex>.partial[.EXT]; the engine's writer (engine/video.py): .STEM.part.EXT
_PARTIAL_RE = re.compile(r"^\..+\.([0-9a-f]{8}\.partial|part)(\.[A-Za-z0-9]+)?$")
_CHUNK = 1 << 20


def partial_name(final: Path) -> Path:
    """A hidden temporary sibling of ``final`` that keeps its extension (ffmpeg picks formats by it)."""
    token = secrets.token_hex(4)
    return final.with_name(f".{final.name}.{token}.partial{final.suffix}")


def is_partial(name: str) -> bool:
    return bool(_PARTIAL_RE.match(name))


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``final`` through (for writers that want a file name).

    On a clean exit the temporary file replaces ``final``; on an exception it is removed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(final)
    try:
        yield tmp
        if not tmp.exists():
            raise SessionError(f"{final}: the writer produced no file")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        fsync_dir(final.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_write(final: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a binary file that appears under ``final`` only once it is complete."""
    with atomic_path(final) as tmp:
        with open(tmp, "xb") as f:
            yield f
            f.flush()


def atomic_write_bytes(final: str | os.PathLike, data: bytes) -> None:
    with atomic_write(final) as f:
        f.write(data)


def atomic_copy(src: str | os.PathLike, final: str | os.PathLike) -> None:
    with atomic_write(final) as out, open(src, "rb") as inp:
        shutil.copyfileobj(inp, out, _CHUNK)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def sweep_partials(folder: Path) -> int:
    """Remove leftover ``.partial`` files below ``folder``; return how many went."""
    removed = 0
    if not folder.is_dir():
        return 0
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            if is_partial(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
    return removed


def safe_relpath(text: object, *, what: str = "path") -> PurePosixPath:
    """Check that ``text`` is a plain relative POSIX path with no ``..``; return it parsed.

    Used for every path that comes from a database or an archive before it is joined
    to a folder, so that nothing outside that folder is ever read or written.
    """
    if not isinstance(text, str) or not text or len(text) > 1024:
        raise SessionError(f"{what} {text!r} is not a relative file path")
    if "\\" in text or "\x00" in text or text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise SessionError(f"{what} {text!r} is absolute or not a POSIX path; refusing it")
    p = PurePosixPath(text)
    if any(part in ("", ".", "..") for part in text.split("/")):
        raise SessionError(f"{what} {text!r} contains '.', '..' or an empty part; refusing it")
    return p


def inside(base: Path, rel: PurePosixPath) -> Path:
    """``base / rel``, asserting the result stays under ``base`` after resolving links."""
    target = base.joinpath(*rel.parts)
    base_r = base.resolve()
    target_r = target.resolve()
    if target_r != base_r and base_r not in target_r.parents:
        raise SessionError(f"{rel}: leads outside {base}; refusing it")
    return target
