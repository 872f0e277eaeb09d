"""Video files: H.264 mp4 (yuv420p, 16 fps) through imageio-ffmpeg's bundled ffmpeg, plus a PNG
thumbnail.  Files are written under a temporary name and renamed, so a crash never leaves a
half-written file under a final name, and names never collide.  The one place the project
encodes or decodes mp4s (the engine, sessions' reels and replay checks, the app's preview);
it needs numpy only, no torch.

Every mp4 goes through :func:`_h264_writer` (one place for the encoder settings): whole clips
via :func:`write_mp4`, and chunks streamed from a background thread via :class:`Mp4Stream`
(the CUDA pipeline feeds it while the VAE decodes the next chunk).
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

FPS = 16  # the reference writes 16 fps (FORMATS.md section 6)
# x264 speed preset.  The quality setting (imageio-ffmpeg quality 8 = crf 10) is unchanged; a
# faster preset spends less search effort per frame, so files get somewhat larger.  "veryfast":
# see BENCHMARKS.md "mp4 write" for time and size against the default ("medium").
X264_PRESET = "veryfast"


def _h264_writer(path: Path, width: int, height: int, fps: int, preset: str | None = None):
    """A started imageio-ffmpeg generator that takes uint8 [H, W, 3] frames (``send``)."""
    import imageio_ffmpeg

    if height % 2 or width % 2:
        raise ValueError(f"yuv420p needs even sizes, got {width}x{height}")
    w = imageio_ffmpeg.write_frames(
        str(path), (width, height), fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
        quality=8, macro_block_size=1, ffmpeg_log_level="error",
        output_params=["-preset", preset or X264_PRESET],
    )
    w.send(None)  # start the generator
    return w


def _part(path: Path) -> Path:
    """The temporary name a file is written under before the rename."""
    return path.with_name(f".{path.stem}.part{path.suffix}")


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


def encode_mp4(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: int = FPS,
               preset: str | None = None) -> int:
    """Encode uint8 [H, W, 3] frames straight into ``path`` (no rename); returns the frame count.

    The size comes from the first frame; H and W must be even.
    """
    writer = None
    n = 0
    try:
        for f in frames:
            if writer is None:
                writer = _h264_writer(Path(path), f.shape[1], f.shape[0], fps, preset)
            writer.send(np.ascontiguousarray(f, dtype=np.uint8))
            n += 1
    finally:
        if writer is not None:
            writer.close()
    return n


def write_mp4(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: int = FPS,
              preset: str | None = None) -> Path:
    """Write uint8 [F, H, W, 3] frames as H.264 yuv420p under a temporary name, then rename."""
    path = Path(path)
    tmp = _part(path)
    if encode_mp4(frames, tmp, fps, preset) == 0:
        raise ValueError(f"{path}: no frames to write")
    os.replace(tmp, path)
    return path


class Mp4Stream:
    """H.264 writers fed from a background thread, so encoding overlaps other work (the decode).

    One file per path; :meth:`put` takes uint8 [B, T, H, W, 3] chunks (B = number of paths), or a
    function returning one, called on the writer thread (e.g. to wait for an asynchronous copy).
    Files are written under a temporary name and renamed on :meth:`finish`; an encoder error is
    raised by the next :meth:`put` or by :meth:`finish`.
    """

    def __init__(self, paths: list[Path], fps: int = FPS, preset: str | None = None):
        self.paths = [Path(p) for p in paths]
        self.fps = fps
        self.preset = preset
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="mp4-writer", daemon=True)
        self._thread.start()

    def put(self, frames: "np.ndarray | Callable[[], np.ndarray]") -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(frames)

    def _work(self) -> None:
        writers = []
        try:
            while (item := self._queue.get()) is not None:
                if callable(item):
                    item = item()
                if not writers:
                    _, _, H, W, _ = item.shape
                    for p in self.paths:
                        writers.append(_h264_writer(_part(p), W, H, self.fps, self.preset))
                for w, frames in zip(writers, item):
                    for f in frames:
                        w.send(np.ascontiguousarray(f))
        except BaseException as e:  # reported by put/finish on the caller's thread
            self._error = e
            while self._queue.get() is not None:  # drain so finish() does not block
                pass
        finally:
            for w in writers:
                w.close()

    def finish(self) -> list[str]:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        for p in self.paths:
            os.replace(_part(p), p)
        return [str(p) for p in self.paths]


def write_png(frame: np.ndarray, path: str | os.PathLike) -> Path:
    from PIL import Image

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.part{path.suffix}")
    Image.fromarray(frame).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def mp4_info(path: str | os.PathLike) -> dict:
    """ffmpeg's header information: ``size`` (width, height), ``fps``, ``duration`` ..."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        return next(gen)
    finally:
        gen.close()


def iter_mp4(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Decode a video frame by frame as uint8 [H, W, 3] RGB."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        W, H = next(gen)["size"]
        for b in gen:
            yield np.frombuffer(b, dtype=np.uint8).reshape(H, W, 3)
    finally:
        gen.close()


def read_mp4(path: str | os.PathLike) -> np.ndarray:
    """Read an mp4 back as uint8 [F, H, W, 3] (tests, replay comparison)."""
    frames = list(iter_mp4(path))
    if not frames:
        W, H = mp4_info(path)["size"]
        return np.zeros((0, H, W, 3), np.uint8)
    return np.stack(frames)
