"""The two turbo-tui themes.  Only colours here; layout lives in ``app.tcss``."""

from __future__ import annotations

from textual.theme import Theme

TURBO_DARK = Theme(
    name="turbo-dark",
    primary="#38BDF8",  # sky: focus, sliders, progress
    secondary="#A78BFA",
    accent="#F59E0B",  # amber: recommended ranges, stars
    warning="#FBBF24",
    error="#F87171",
    success="#4ADE80",
    foreground="#E6EDF3",
    background="#0F1419",
    surface="#151B23",
    panel="#1D2630",
    dark=True,
)

TURBO_LIGHT = Theme(
    name="turbo-light",
    primary="#0369A1",
    secondary="#6D28D9",
    accent="#B45309",
    warning="#B45309",
    error="#B91C1C",
    success="#15803D",
    foreground="#1F2933",
    background="#F5F7FA",
    surface="#FFFFFF",
    panel="#E3E9F0",
    dark=False,
)

THEMES: dict[str, Theme] = {t.name: t for t in (TURBO_DARK, TURBO_LIGHT)}
