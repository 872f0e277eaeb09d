"""turbo-tui's themes: Textual :class:`~textual.theme.Theme` objects plus stylesheets.

Themes are data.  The colours live in :mod:`themes.turbo`; the stylesheets next to
this file (``*.tcss``) use only ``$variables`` so that every theme, ours or
Textual's built-in ones, styles the whole app.
"""

from __future__ import annotations

from pathlib import Path

from themes.turbo import THEMES, TURBO_DARK, TURBO_LIGHT

DEFAULT_THEME = TURBO_DARK.name
STYLESHEETS = (Path(__file__).parent / "app.tcss",)

__all__ = ["DEFAULT_THEME", "STYLESHEETS", "THEMES", "TURBO_DARK", "TURBO_LIGHT"]
