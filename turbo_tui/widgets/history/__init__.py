from turbo_tui.widgets.history.history import HistoryView, TurnRow

__all__ = ["HistoryView", "TurnRow"]
