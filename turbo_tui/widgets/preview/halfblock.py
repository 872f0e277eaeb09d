"""Pictures from RGB bytes in any truecolour terminal: one cell shows two pixels with '▀'.

Pure Rich renderables and helpers: no Textual, no numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text


@dataclass(frozen=True)
class RGBFrame:
    """One picture: ``width*height*3`` bytes, row-major RGB."""

    width: int
    height: int
    data: bytes

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        i = 3 * (y * self.width + x)
        d = self.data
        return d[i], d[i + 1], d[i + 2]


def fit(width: int, height: int, cols: int, rows: int) -> tuple[int, int]:
    """Cells (cols, rows) that show a width x height picture as large as fits, keeping its shape.

    A cell is about twice as tall as wide and holds two pixel rows, so a square
    picture of n cells across takes n/2 cell rows.
    """
    if width <= 0 or height <= 0 or cols <= 0 or rows <= 0:
        return 0, 0
    c = cols
    r = max(1, round(c * height / width / 2))
    if r > rows:
        r = rows
        c = max(1, round(r * 2 * width / height))
    return min(c, cols), r


@lru_cache(maxsize=4096)
def _style(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Style:
    return Style(color=Color.from_rgb(*top), bgcolor=Color.from_rgb(*bottom))


class HalfBlock:
    """A Rich renderable that scales an :class:`RGBFrame` to ``cols`` x ``rows`` cells (nearest pixel)."""

    def __init__(self, frame: RGBFrame, cols: int, rows: int) -> None:
        self.frame = frame
        self.cols, self.rows = fit(frame.width, frame.height, cols, rows)

    def lines(self) -> list[list[Segment]]:
        f = self.frame
        out: list[list[Segment]] = []
        if not self.cols:
            return out
        xs = [min(f.width - 1, (2 * c + 1) * f.width // (2 * self.cols)) for c in range(self.cols)]
        py = 2 * self.rows
        ys = [min(f.height - 1, (2 * r + 1) * f.height // (2 * py)) for r in range(py)]
        for r in range(self.rows):
            top_y, bot_y = ys[2 * r], ys[2 * r + 1]
            out.append([Segment("▀", _style(f.pixel(x, top_y), f.pixel(x, bot_y))) for x in xs])
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines():
            yield from line
            yield Segment.line()


def thumbnail_text(frame: RGBFrame, cols: int = 8) -> Text:
    """A one-row thumbnail (cols x 2 pixels) for a history row."""
    block = HalfBlock(frame, cols, 1)
    text = Text()
    for line in block.lines()[:1]:
        for seg in line:
            text.append(seg.text, seg.style)
    return text


@lru_cache(maxsize=256)
def load_thumbnail(path: str, cols: int = 8) -> RGBFrame | None:
    """A tiny RGB frame read from a PNG/JPEG (None when unreadable)."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            small = im.convert("RGB").resize((cols, 2))
            return RGBFrame(small.width, small.height, small.tobytes())
    except (OSError, ValueError):
        return None
