"""The preview area: live per-step previews while a turn runs, then the finished video, looping.

Pictures are drawn with half blocks everywhere; where the terminal speaks the
kitty graphics protocol or sixel (detected by ``textual-image`` before the app
starts, see :func:`turbo_tui.app.detect_graphics`), a ``textual-image`` widget
draws them at full resolution instead.
"""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Label

from engine.api import Preview
from turbo_tui.widgets.preview.halfblock import HalfBlock, RGBFrame
from turbo_tui.widgets.preview.player import read_video_frames


# A finished video loops this many times, then rests on its first frame (F6 / Space plays it
# again): drawing frames forever would keep an idle app busy.
MAX_LOOPS = 3


class FrameView(Widget):
    """Draws one :class:`RGBFrame` with half blocks, or a centred message."""

    DEFAULT_CSS = """
    FrameView { height: 1fr; width: 1fr; content-align: center middle; color: $foreground 50%; }
    """

    frame: reactive[RGBFrame | None] = reactive(None)
    message: reactive[str] = reactive("no video yet")

    def render(self) -> RenderableType:
        if self.frame is None:
            return Text(self.message, justify="center")
        size = self.content_size
        return HalfBlock(self.frame, size.width, size.height)


class VideoPreview(Vertical, can_focus=True):
    DEFAULT_CSS = """
    VideoPreview { height: 1fr; }
    VideoPreview #preview-caption { height: 1; width: 1fr; color: $foreground 70%; }
    """

    BINDINGS = [Binding("space", "toggle_play", "Play/pause")]

    class Loaded(Message):
        """A video's frames were decoded (posted by the reading worker)."""

        def __init__(self, path: str, frames: list[RGBFrame], fps: float, caption: str = "",
                     error: str = "") -> None:
            super().__init__()
            self.path = path
            self.frames = frames
            self.fps = fps
            self.caption = caption
            self.error = error

    def __init__(self, graphics: str = "halfblock", *, id: str | None = "preview") -> None:
        super().__init__(id=id)
        self.graphics = graphics
        self.frames: list[RGBFrame] = []
        self.index = 0
        self.fps = 16.0
        self.playing = True
        self.path: str | None = None
        self._timer: Timer | None = None
        self._loops = 0  # completed loops of the current video
        self._image: Any = None  # a textual-image widget when graphics are on

    def compose(self) -> ComposeResult:
        self.border_title = "Preview"
        if self.graphics in ("sixel", "tgp"):
            from textual_image.widget import Image  # imported before start-up by detect_graphics

            self._image = Image(id="preview-image")
            yield self._image
        yield FrameView(id="preview-frame")
        yield Label("", id="preview-caption")

    # -- what to show ------------------------------------------------------

    def show_message(self, message: str) -> None:
        self._stop()
        self.frames = []
        self.path = None
        view = self.query_one(FrameView)
        view.frame = None
        view.message = message
        self._caption("")

    def show_live(self, preview: Preview, caption: str) -> None:
        """A per-step preview from the engine (a few small frames)."""
        frames = [RGBFrame(preview.width, preview.height, f) for f in preview.frames]
        self.path = None
        self._play(frames, 8.0, caption)

    def show_video(self, path: str, caption: str) -> None:
        """Decode ``path`` in a worker, then loop it."""
        self.path = path
        self._caption(caption + "  (loading…)")
        self._read(path, caption)

    @work(thread=True, exclusive=True, group="preview-read")
    def _read(self, path: str, caption: str) -> None:
        try:
            frames, fps = read_video_frames(path)
        except (OSError, RuntimeError, StopIteration, ValueError) as e:
            self.post_message(self.Loaded(path, [], 0.0, error=f"cannot read {path}: {e}"))
            return
        self.post_message(self.Loaded(path, frames, fps, caption))

    def on_video_preview_loaded(self, message: Loaded) -> None:
        message.stop()
        if message.path != self.path:
            return  # a newer request replaced this one
        if message.error:
            self.show_message(message.error)
            return
        self._play(message.frames, message.fps, message.caption)
        self.path = message.path

    # -- playback ----------------------------------------------------------

    def _caption(self, text: str) -> None:
        self.query_one("#preview-caption", Label).update(text)

    def _play(self, frames: list[RGBFrame], fps: float, caption: str) -> None:
        self._stop()
        self._loops = 0
        self.frames = frames
        self.fps = fps or 16.0
        self.index = 0
        self._caption(caption)
        self._draw()
        if len(frames) > 1 and self.playing:
            self._timer = self.set_interval(1 / min(self.fps, 16.0), self._tick)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _tick(self) -> None:
        if self.frames:
            self.index = (self.index + 1) % len(self.frames)
            if self.index == 0:
                self._loops += 1
                if self._loops >= MAX_LOOPS:  # rest on the first frame: an idle app stays idle
                    self._stop()
            self._draw()

    def _draw(self) -> None:
        if not self.frames:
            return
        frame = self.frames[self.index]
        if self._image is not None:
            from PIL import Image

            self._image.image = Image.frombytes("RGB", (frame.width, frame.height), frame.data)
            self.query_one(FrameView).display = False
        else:
            self.query_one(FrameView).frame = frame

    def action_toggle_play(self) -> None:
        if self.playing and self._timer is None and len(self.frames) > 1:  # resting after its loops
            self._loops = 0
            self._timer = self.set_interval(1 / min(self.fps, 16.0), self._tick)
            return
        self.playing = not self.playing
        if not self.playing:
            self._stop()
        elif len(self.frames) > 1 and self._timer is None:
            self._timer = self.set_interval(1 / min(self.fps, 16.0), self._tick)
