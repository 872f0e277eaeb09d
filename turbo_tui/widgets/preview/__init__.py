from turbo_tui.widgets.preview.player import open_in_player
from turbo_tui.widgets.preview.preview import VideoPreview

__all__ = ["VideoPreview", "open_in_player"]
