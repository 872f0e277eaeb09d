"""The multi-line prompt editor with its validation message."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static, TextArea

from engine.api import validate_field
from engine.errors import ValidationError


class PromptEditor(Vertical):
    DEFAULT_CSS = """
    PromptEditor { height: auto; }
    PromptEditor TextArea { height: 5; }
    PromptEditor .field-error { color: $error; display: none; height: auto; }
    PromptEditor.-invalid .field-error { display: block; }
    """

    error: reactive[str] = reactive("", init=False)

    def __init__(self, text: str = "", *, example: str = "", id: str | None = "prompt-editor") -> None:
        super().__init__(id=id)
        self._initial = text
        self._example = example

    def compose(self) -> ComposeResult:
        area = TextArea(self._initial, id="prompt", soft_wrap=True, show_line_numbers=False,
                        placeholder=f"e.g. {self._example}" if self._example else "")
        area.border_title = "Prompt"
        yield area
        yield Static("", classes="field-error", id="error-prompt")

    @property
    def text(self) -> str:
        return self.query_one(TextArea).text

    @text.setter
    def text(self, value: str) -> None:
        self.query_one(TextArea).text = value

    def check(self) -> str:
        """The prompt, or :class:`ValidationError` (also shown under the editor)."""
        text = self.text
        try:
            validate_field("prompt", text)
        except ValidationError as e:
            self.error = str(e)
            raise
        self.error = ""
        return text

    @on(TextArea.Changed)
    def _typed(self) -> None:
        if self.error and self.text.strip():
            self.error = ""

    def watch_error(self, error: str) -> None:
        self.set_class(bool(error), "-invalid")
        self.query_one("#error-prompt", Static).update(error)
