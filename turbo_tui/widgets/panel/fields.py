"""One row of the parameter panel per field, each validating as it is typed.

A row shows its label, its control(s) and, under them, the validation message
from :func:`engine.api.parse_field` (the same text the REPL shows).
"""

from __future__ import annotations

import random
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from engine.api import ASPECT_RATIOS, MAX_SEED, RESOLUTIONS, parse_field, validate_field
from engine.errors import ValidationError
from turbo_tui.params import LABELS, SLIDERS, format_value
from turbo_tui.widgets.panel.slider import Slider


class ParamField(Vertical):
    """Base row: ``value`` is the last valid value, ``error`` the message for the typed text."""

    DEFAULT_CSS = """
    ParamField { height: auto; }
    ParamField > Horizontal { height: 1; }
    ParamField .field-label { width: 14; color: $foreground 80%; }
    ParamField .field-error { color: $error; height: auto; display: none; padding-left: 14; }
    ParamField.-invalid .field-error { display: block; }
    ParamField.-invalid .field-label { color: $error; }
    ParamField Input { width: 1fr; }
    """

    error: reactive[str] = reactive("", init=False)

    class Changed(Message):
        """A row took a new valid value (typed, slid, chosen, or set from code)."""

        def __init__(self, row: "ParamField") -> None:
            super().__init__()
            self.row = row

        @property
        def control(self) -> "ParamField":
            return self.row

    def __init__(self, field: str, value: Any) -> None:
        super().__init__(id=f"field-{field}", classes="param-field")
        self.field = field
        self.value = value
        self.problem: ValidationError | None = None  # why the typed text is not accepted

    def compose_controls(self) -> ComposeResult:
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label(LABELS[self.field], classes="field-label")
            yield from self.compose_controls()
        yield Static("", classes="field-error", id=f"error-{self.field}")

    def watch_error(self, error: str) -> None:
        self.set_class(bool(error), "-invalid")
        self.query_one(".field-error", Static).update(error)

    def accept_text(self, text: str) -> bool:
        """Parse typed text; keep the value if valid, show the message if not."""
        try:
            value = parse_field(self.field, text)
        except ValidationError as e:
            self.problem = e
            self.error = str(e)
            return False
        self._accept(value)
        return True

    def _accept(self, value: Any) -> None:
        self.value = value
        self.problem = None
        self.error = ""
        self.post_message(self.Changed(self))

    def set_value(self, value: Any) -> None:
        """Set from code (loading a turn); no validation message is kept."""
        self._accept(value)


class TextField(ParamField):
    """A free-form input: frames, samples, boundary, image path."""

    def __init__(self, field: str, value: Any, placeholder: str = "") -> None:
        super().__init__(field, value)
        self._placeholder = placeholder

    def compose_controls(self) -> ComposeResult:
        yield Input(format_value(self.field, self.value), placeholder=self._placeholder,
                    id=f"input-{self.field}", compact=True)

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self.accept_text(event.value)

    def set_value(self, value: Any) -> None:
        super().set_value(value)
        with self.prevent(Input.Changed):
            self.query_one(Input).value = format_value(self.field, value)


class SliderField(ParamField):
    """A slider with an exact-value input beside it (steps, top-k, sigma_max)."""

    DEFAULT_CSS = """
    SliderField Input { width: 10; }
    SliderField Slider { margin: 0 1; }
    """

    def __init__(self, field: str, value: Any, shown: float, placeholder: str = "") -> None:
        super().__init__(field, value)
        self._shown = shown
        self._placeholder = placeholder

    def compose_controls(self) -> ComposeResult:
        yield Slider(SLIDERS[self.field], self._shown, id=f"slider-{self.field}")
        yield Input(format_value(self.field, self.value), placeholder=self._placeholder,
                    id=f"input-{self.field}", compact=True)

    @on(Slider.Changed)
    def _slid(self, event: Slider.Changed) -> None:
        event.stop()
        spec = SLIDERS[self.field]
        value: Any = int(event.value) if spec.integer else float(event.value)
        self.set_value(value)

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        if self.accept_text(event.value) and self.value is not None:
            self.query_one(Slider).set_value(float(self.value))

    def set_value(self, value: Any) -> None:
        super().set_value(value)
        with self.prevent(Input.Changed):
            self.query_one(Input).value = format_value(self.field, value)
        if value is not None:
            self.query_one(Slider).set_value(float(value))

    def show_default(self, shown: float) -> None:
        """Move the slider to the effective default while the input stays empty."""
        if self.value is None:
            self.query_one(Slider).set_value(shown)
            self.query_one(Input).placeholder = f"{shown:g} (def)"


class SeedField(ParamField):
    """Seed input with a lock (keep it between turns) and a randomise button."""

    DEFAULT_CSS = """
    SeedField Checkbox { width: auto; margin-left: 1; }
    SeedField Button { width: auto; min-width: 8; margin-left: 1; }
    """

    def __init__(self, value: int, locked: bool = True) -> None:
        super().__init__("seed", value)
        self._locked = locked

    def compose_controls(self) -> ComposeResult:
        yield Input(str(self.value), id="input-seed", compact=True)
        yield Checkbox("lock", self._locked, id="seed-lock", compact=True)
        yield Button("random", id="seed-random", compact=True)

    @property
    def locked(self) -> bool:
        return self.query_one("#seed-lock", Checkbox).value

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self.accept_text(event.value)

    @on(Button.Pressed, "#seed-random")
    def _random(self, event: Button.Pressed) -> None:
        event.stop()
        self.randomise()

    def randomise(self) -> int:
        seed = random.randint(0, min(MAX_SEED, 2**31 - 1))
        self.set_value(seed)
        return seed

    def set_value(self, value: Any) -> None:
        super().set_value(value)
        with self.prevent(Input.Changed):
            self.query_one(Input).value = str(value)


class ChoiceField(ParamField):
    """A drop-down of fixed choices (resolution, aspect ratio)."""

    def __init__(self, field: str, value: str, choices: tuple[str, ...]) -> None:
        super().__init__(field, value)
        self._choices = choices

    def compose_controls(self) -> ComposeResult:
        yield Select([(c, c) for c in self._choices], value=self.value, allow_blank=False,
                     id=f"select-{self.field}", compact=True)

    @on(Select.Changed)
    def _chosen(self, event: Select.Changed) -> None:
        event.stop()
        try:
            validate_field(self.field, event.value)
        except ValidationError as e:
            self.problem = e
            self.error = str(e)
            return
        self._accept(event.value)

    def set_value(self, value: Any) -> None:
        super().set_value(value)
        with self.prevent(Select.Changed):
            self.query_one(Select).value = value


class ToggleField(ParamField):
    """An on/off choice (ODE instead of SDE, adaptive resolution)."""

    def __init__(self, field: str, value: bool, caption: str) -> None:
        super().__init__(field, value)
        self._caption = caption

    def compose_controls(self) -> ComposeResult:
        yield Checkbox(self._caption, self.value, id=f"check-{self.field}", compact=True)

    @on(Checkbox.Changed)
    def _toggled(self, event: Checkbox.Changed) -> None:
        event.stop()
        self._accept(bool(event.value))

    def set_value(self, value: Any) -> None:
        super().set_value(value)
        with self.prevent(Checkbox.Changed):
            self.query_one(Checkbox).value = bool(value)


__all__ = [
    "ParamField", "TextField", "SliderField", "SeedField", "ChoiceField", "ToggleField",
    "RESOLUTIONS", "ASPECT_RATIOS",
]
