"""Writing turns to disk: H.264 mp4 (yuv420p, 16 fps) through imageio-ffmpeg's bundled ffmpeg,
plus a PNG thumbnail.  Files are written under a temporary name and renamed, so a crash never
leaves a half-written file under a final name, and names never collide.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

FPS = 16  # the reference writes 16 fps (FORMATS.md section 6)


def to_uint8_frames(video: "np.ndarray") -> np.ndarray:
    """Decoder output [3, F, H, W] float in ~[-1, 1] -> uint8 [F, H, W, 3].

    As the reference: clamp to [-1, 1], (x + 1) / 2, floor(255 x + 0.5).
    """
    x = np.clip(video, -1.0, 1.0)
    x = np.floor((x + 1.0) / 2.0 * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(x.transpose(1, 2, 3, 0))


def unique_path(directory: str | os.PathLike, stem: str, suffix: str) -> Path:
    """``directory/stem.suffix``, or ``stem-2.suffix`` ... if taken."""
    d = Path(directory)
    for n in itertools.count(1):
        p = d / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
        if not p.exists():
            return p
    raise AssertionError("unreachable")


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: int = FPS) -> Path:
    """Write uint8 [F, H, W, 3] frames as H.264 yuv420p; H and W must be even."""
    import imageio_ffmpeg

    path = Path(path)
    F, H, W, _ = frames.shape
    if H % 2 or W % 2:
        raise ValueError(f"yuv420p needs even sizes, got {W}x{H}")
    tmp = path.with_name(f".{path.stem}.part{path.suffix}")
    writer = imageio_ffmpeg.write_frames(
        str(tmp), (W, H), fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
        quality=8, macro_block_size=1, ffmpeg_log_level="error",
    )
    writer.send(None)  # start the generator
    try:
        for f in frames:
            writer.send(np.ascontiguousarray(f))
    finally:
        writer.close()
    os.replace(tmp, path)
    return path


def write_png(frame: np.ndarray, path: str | os.PathLike) -> Path:
    from PIL import Image

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.part{path.suffix}")
    Image.fromarray(frame).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def read_mp4(path: str | os.PathLike) -> np.ndarray:
    """Read an mp4 back as uint8 [F, H, W, 3] (tests, replay comparison, previews)."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(gen)
    W, H = meta["size"]
    frames = [np.frombuffer(b, dtype=np.uint8).reshape(H, W, 3) for b in gen]
    return np.stack(frames) if frames else np.zeros((0, H, W, 3), np.uint8)
