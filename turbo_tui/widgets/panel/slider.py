"""A small slider of our own: float or integer values, linear or log scale, marks.

Keys: left/right (one step), page up/down (a tenth of the track), home/end.
Mouse: click or drag anywhere on the track.  Posts :class:`Slider.Changed`.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from turbo_tui.params import SliderSpec


class Slider(Widget, can_focus=True):
    DEFAULT_CSS = """
    Slider {
        height: 1;
        width: 1fr;
        min-width: 8;
    }
    Slider > .slider--track { color: $foreground 30%; }
    Slider > .slider--fill { color: $primary; }
    Slider > .slider--thumb { color: $primary; text-style: bold; }
    Slider:focus > .slider--thumb { color: $accent; }
    Slider > .slider--mark { color: $accent; }
    Slider > .slider--recommended { color: $accent 70%; }
    """

    COMPONENT_CLASSES = {
        "slider--track",
        "slider--fill",
        "slider--thumb",
        "slider--mark",
        "slider--recommended",
    }

    BINDINGS = [
        Binding("right,l", "nudge(1)", "Increase", show=False),
        Binding("left,h", "nudge(-1)", "Decrease", show=False),
        Binding("pageup", "page(1)", "Page up", show=False),
        Binding("pagedown", "page(-1)", "Page down", show=False),
        Binding("home", "to_end(0)", "Minimum", show=False),
        Binding("end", "to_end(1)", "Maximum", show=False),
    ]

    value: reactive[float] = reactive(0.0, init=False)

    @dataclass
    class Changed(Message):
        """The value changed by a key or the mouse (not when set from code)."""

        slider: "Slider"
        value: float

        @property
        def control(self) -> "Slider":
            return self.slider

    def __init__(
        self,
        spec: SliderSpec,
        value: float,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.spec = spec
        self.set_reactive(Slider.value, spec.clamp(value))
        self._dragging = False

    # -- value -------------------------------------------------------------

    def set_value(self, value: float) -> None:
        """Set from code (an input beside it, a loaded turn): no Changed message."""
        self.set_reactive(Slider.value, self.spec.clamp(value))
        self.refresh()

    def _user_set(self, value: float) -> None:
        value = self.spec.clamp(value)
        if value != self.value:
            self.value = value
            self.post_message(self.Changed(self, value))

    def watch_value(self) -> None:
        self.refresh()

    def action_nudge(self, clicks: int) -> None:
        self._user_set(self.spec.nudge(self.value, clicks))

    def action_page(self, pages: int) -> None:
        self._user_set(self.spec.page_nudge(self.value, pages))

    def action_to_end(self, end: int) -> None:
        self._user_set(self.spec.maximum if end else self.spec.minimum)

    # -- mouse -------------------------------------------------------------

    def _value_at(self, x: int) -> float:
        width = max(2, self.content_size.width)
        return self.spec.from_fraction(x / (width - 1))

    def on_mouse_down(self, event: events.MouseDown) -> None:
        self.focus()
        self._dragging = True
        self.capture_mouse()
        self._user_set(self._value_at(event.x))
        event.stop()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._dragging:
            self._user_set(self._value_at(event.x))

    def on_mouse_up(self, event: events.MouseUp) -> None:
        if self._dragging:
            self._dragging = False
            self.release_mouse()
            event.stop()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.action_nudge(1)
        event.stop()

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.action_nudge(-1)
        event.stop()

    # -- drawing -----------------------------------------------------------

    def _column(self, value: float, width: int) -> int:
        return round(self.spec.to_fraction(value) * (width - 1))

    def render(self) -> Text:
        width = max(2, self.content_size.width)
        spec = self.spec
        style = self.get_component_rich_style
        thumb = self._column(self.value, width)
        marks = {self._column(m, width) for m in spec.marks}
        rec = None
        if spec.recommended:
            rec = (self._column(spec.recommended[0], width), self._column(spec.recommended[1], width))
        text = Text(no_wrap=True, overflow="crop")
        for col in range(width):
            if col == thumb:
                text.append("●", style("slider--thumb"))
            elif col in marks:
                text.append("┼" if col < thumb else "┊", style("slider--mark"))
            elif col < thumb:
                text.append("━", style("slider--fill"))
            elif rec and rec[0] <= col <= rec[1]:
                text.append("═", style("slider--recommended"))
            else:
                text.append("─", style("slider--track"))
        return text
