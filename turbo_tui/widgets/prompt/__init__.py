from turbo_tui.widgets.prompt.editor import PromptEditor

__all__ = ["PromptEditor"]
