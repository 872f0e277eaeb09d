"""turbo-tui's widgets, foldered by screen region.

``chrome/`` header and progress bar, ``prompt/`` the prompt editor, ``panel/`` the
parameter panel and its slider, ``history/`` the turn tree, ``preview/`` the
video preview.  Widgets post messages; only ``turbo_tui.app`` wires them together.
"""
