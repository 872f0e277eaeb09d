"""Small real videos and a torch-free stand-in engine for tests of code built on sessions.

:class:`PatternEngine` follows the :class:`engine.api.Engine` protocol and writes a
real mp4 whose pixels depend only on the request (seed, prompt, size), so replays
of it match.  It is for tests of the session layer and the UIs; the engine's own
tests use the real tiny model.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np

from engine.api import EngineInfo, ProgressCallback, ProgressEvent, TurnRequest, TurnResult
from engine.errors import Cancelled
from sessions.media import write_video


def pattern_frames(seed: int, n: int = 5, width: int = 64, height: int = 48) -> np.ndarray:
    """``n`` frames of seeded noise plus a moving bar, ``[n, H, W, 3]`` uint8."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(n, height, width, 3), dtype=np.uint8)
    for i in range(n):
        x = (i * 7) % width
        frames[i, :, x:x + 4] = 255
    return frames


def write_test_video(path: str | os.PathLike, seed: int = 0, n: int = 5, width: int = 64, height: int = 48) -> Path:
    write_video(path, pattern_frames(seed, n, width, height))
    return Path(path)


class PatternEngine:
    """A deterministic engine: the video is a function of the request only."""

    def __init__(self, *, fail_with: Exception | None = None, jitter: bool = False):
        self.fail_with = fail_with
        self.jitter = jitter  # make every call differ (to test replay mismatches)
        self.calls = 0
        self._cancel = False

    def info(self) -> EngineInfo:
        return EngineInfo(model="pattern", device="cpu", dtype="uint8", attention="none",
                          quant_linear=False, i2v=False)

    def memory_in_use(self) -> int:
        return 0

    def generate(self, request: TurnRequest, output_dir: str, on_progress: ProgressCallback | None = None) -> TurnResult:
        self.calls += 1
        t0 = time.perf_counter()
        if self.fail_with is not None:
            raise self.fail_with
        if self._cancel:
            self._cancel = False
            raise Cancelled()
        key = f"{request.prompt}|{request.seed}|{self.calls if self.jitter else 0}".encode()
        seed = int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
        path = Path(output_dir) / f"seed{request.seed}.mp4"
        write_test_video(path, seed)
        total = time.perf_counter() - t0
        if on_progress:
            on_progress(ProgressEvent(stage="write", status="end", elapsed_s=total, stage_s=total))
        return TurnResult(request=request.replace(sigma_max=request.effective_sigma_max), video_paths=(str(path),),
                          thumbnail_path=None, timings={"write": total}, total_s=total, peak_memory_bytes=0,
                          width=64, height=48, num_frames=5, launch={"model": "pattern"}, device="cpu")

    def cancel(self) -> None:
        self._cancel = True

    def close(self) -> None:
        pass
