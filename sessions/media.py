"""Videos for sessions (reels, thumbnails, replay checks), through engine.video, without torch.

Frames are ``uint8`` arrays ``[H, W, 3]``.  Everything written here goes through a
``.partial`` name first (sessions.files.atomic_path).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from engine.errors import SessionError
from engine.video import encode_mp4, iter_mp4
from sessions.files import atomic_path

REEL_FPS = 16


def iter_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Decode a video frame by frame (RGB uint8 ``[H, W, 3]``)."""
    frames = iter_mp4(path)
    try:
        first = next(frames, None)
    except (OSError, RuntimeError, ValueError) as e:
        raise SessionError(f"{path}: cannot read the video ({e})") from None
    if first is None:
        return
    yield first
    yield from frames


def video_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of a video, from its first frame."""
    for frame in iter_frames(path):
        return frame.shape[1], frame.shape[0]
    raise SessionError(f"{path}: the video has no frames")


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: int = REEL_FPS) -> None:
    """Write frames as an H.264 mp4 (the engine's encoder settings); sides must be even."""
    with atomic_path(path) as tmp:
        if encode_mp4(frames, tmp, fps) == 0:
            raise SessionError(f"{path}: no frames to write")


def write_thumbnail(video: str | os.PathLike, final: str | os.PathLike, max_side: int = 320) -> None:
    """A PNG of the video's first frame, at most ``max_side`` pixels on its long side."""
    from PIL import Image

    first = next(iter_frames(video), None)
    if first is None:
        raise SessionError(f"{video}: the video has no frames")
    im = Image.fromarray(first)
    im.thumbnail((max_side, max_side))
    with atomic_path(final) as tmp:
        im.save(tmp, format="PNG")


def videos_match(a: Sequence[str | os.PathLike], b: Sequence[str | os.PathLike], tolerance: int = 0) -> bool:
    """Whether two lists of videos decode to the same frames (max |difference| <= ``tolerance``)."""
    if len(a) != len(b) or not a:
        return False
    for pa, pb in zip(a, b):
        if not (os.path.isfile(pa) and os.path.isfile(pb)):
            return False
        fa, fb = iter_frames(pa), iter_frames(pb)
        while True:
            x, y = next(fa, None), next(fb, None)
            if x is None or y is None:
                if x is not None or y is not None:
                    return False  # different frame counts
                break
            if x.shape != y.shape:
                return False
            if tolerance == 0:
                if not np.array_equal(x, y):
                    return False
            elif np.abs(x.astype(np.int16) - y.astype(np.int16)).max() > tolerance:
                return False
    return True


def _fit(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale ``frame`` down to fit ``width``x``height`` if needed, then centre it on black."""
    h, w = frame.shape[:2]
    if w > width or h > height:
        from PIL import Image

        scale = min(width / w, height / h)
        w, h = max(1, int(w * scale)), max(1, int(h * scale))
        frame = np.asarray(Image.fromarray(frame).resize((w, h), Image.BILINEAR))
    if (w, h) == (width, height):
        return frame
    out = np.zeros((height, width, 3), dtype=np.uint8)
    y0, x0 = (height - h) // 2, (width - w) // 2
    out[y0:y0 + h, x0:x0 + w] = frame
    return out


def make_reel(videos: Sequence[str | os.PathLike], out: str | os.PathLike, fps: int = REEL_FPS,
              max_side: int = 1280) -> Path:
    """Join ``videos`` in order into one mp4, padding every frame onto a common even size."""
    if not videos:
        raise SessionError("the reel needs at least one video (no chosen turn has one)")
    sizes = [video_size(v) for v in videos]
    width = min(max(w for w, _ in sizes), max_side)
    height = min(max(h for _, h in sizes), max_side)
    width, height = width + width % 2, height + height % 2  # yuv420p needs even sides

    def frames() -> Iterator[np.ndarray]:
        for v in videos:
            for frame in iter_frames(v):
                yield _fit(frame, width, height)

    write_video(out, frames(), fps=fps)
    return Path(out)
