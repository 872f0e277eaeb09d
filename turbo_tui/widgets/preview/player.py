"""Open an mp4 in the system's video player, and read an mp4's frames for the preview."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys

from turbo_tui.widgets.preview.halfblock import RGBFrame


def player_command(path: str) -> list[str] | None:
    """The command that opens ``path`` with the desktop's default player, if there is one."""
    if sys.platform == "darwin":
        return ["open", path]
    if os.name == "nt":  # pragma: no cover - not a target, but harmless
        return ["cmd", "/c", "start", "", path]
    opener = shutil.which("xdg-open")
    return [opener, path] if opener else None


def open_in_player(path: str) -> str:
    """Start the system player detached from the app; return what was run (raises OSError)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such video")
    cmd = player_command(path)
    if cmd is None:
        raise OSError("no system player found (install xdg-utils, or open the file yourself)")
    subprocess.Popen(  # noqa: S603 - a fixed opener and a file path, no shell
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return " ".join(cmd)


def read_video_frames(path: str, max_width: int = 192, max_frames: int = 200) -> tuple[list[RGBFrame], float]:
    """Decode an mp4 into small RGB frames (blocking: call it from a thread worker)."""
    from PIL import Image

    from engine.video import iter_mp4, mp4_info

    fps = float(mp4_info(path).get("fps") or 16.0)
    frames: list[RGBFrame] = []
    for rgb in itertools.islice(iter_mp4(path), max_frames):
        h, w = rgb.shape[:2]
        if w > max_width:
            im = Image.fromarray(rgb).resize((max_width, max(1, round(h * max_width / w))))
            frames.append(RGBFrame(im.width, im.height, im.tobytes()))
        else:
            frames.append(RGBFrame(w, h, rgb.tobytes()))
    return frames, fps
