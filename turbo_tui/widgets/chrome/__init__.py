from turbo_tui.widgets.chrome.header import EngineHeader
from turbo_tui.widgets.chrome.progress import TurnProgress

__all__ = ["EngineHeader", "TurnProgress"]
