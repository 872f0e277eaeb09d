"""The header line: app state, model, device, attention backend, quantization, memory."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from engine.api import EngineInfo
from turbo_tui.params import format_bytes


class EngineHeader(Widget):
    DEFAULT_CSS = """
    EngineHeader { height: 1; background: $panel; color: $foreground; }
    EngineHeader > .header--title { color: $primary; text-style: bold; }
    EngineHeader > .header--state { color: $warning; text-style: bold; }
    EngineHeader > .header--ready { color: $success; text-style: bold; }
    EngineHeader > .header--error { color: $error; text-style: bold; }
    EngineHeader > .header--key { color: $foreground 60%; }
    """
    COMPONENT_CLASSES = {"header--title", "header--state", "header--ready", "header--error", "header--key"}

    state: reactive[str] = reactive("loading model…")  # loading model… | ready | generating | error
    info: reactive[EngineInfo | None] = reactive(None)
    memory: reactive[int] = reactive(0)
    session: reactive[str] = reactive("")

    def render(self) -> Text:
        style = self.get_component_rich_style
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" turbo-tui ", style("header--title"))
        kind = {"ready": "header--ready", "error": "header--error"}.get(self.state, "header--state")
        text.append(f"[{self.state}]", style(kind))
        info = self.info
        pairs: list[tuple[str, str]] = []
        if info is not None:
            pairs = [
                ("model", info.model + (" (I2V)" if info.i2v else "")),
                ("device", f"{info.device} {info.dtype}"),
                ("attention", info.attention),
                ("quant", "int8" if info.quant_linear else "off"),
                ("mem", format_bytes(self.memory)),
            ]
        if self.session:
            pairs.append(("session", self.session))
        for key, value in pairs:
            text.append("  ")
            text.append(f"{key} ", style("header--key"))
            text.append(value)
        return text
