"""The parameter panel: every per-turn field except the prompt."""

from turbo_tui.widgets.panel.panel import ParamPanel
from turbo_tui.widgets.panel.slider import Slider

__all__ = ["ParamPanel", "Slider"]
