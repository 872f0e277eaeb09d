"""Delivering a turn's videos to a path the user named (generate --out, the REPL's output path)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

from engine.errors import TurboError


def deliver(paths: Sequence[str], out: str, *, move: bool = False) -> list[str]:
    """Copy (or move) written videos to ``out``: an .mp4 path (extra samples get -1, -2 ...) or a folder."""
    target = Path(os.path.expanduser(out))
    placed = []
    for n, src in enumerate(paths):
        if target.suffix.lower() == ".mp4":
            dst = target if n == 0 else target.with_name(f"{target.stem}-{n}{target.suffix}")
        else:
            dst = target / Path(src).name
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.move if move else shutil.copy2)(src, dst)
        except OSError as e:
            raise TurboError(f"{dst}: cannot write the output copy ({e.strerror or e})") from None
        placed.append(str(dst))
    return placed
