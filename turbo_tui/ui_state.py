"""Small UI state remembered across runs (the chosen theme), kept apart from the user's TOML.

The file is JSON under the user config directory.  A theme chosen in the app wins
over the configured one until the configuration itself changes: we remember which
configured theme the choice was made against, so editing ``[ui] theme`` or passing
``--theme`` still takes effect on the next start.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

STATE_FILE = "ui-state.json"


def default_state_path() -> Path:
    from turbo_tui.config import user_config_dir

    return user_config_dir() / STATE_FILE


@dataclass
class UiState:
    path: Path
    theme: str | None = None  # the theme last chosen in the app
    configured_theme: str | None = None  # the configured theme at that moment

    @classmethod
    def load(cls, path: Path | None = None) -> "UiState":
        p = Path(path) if path is not None else default_state_path()
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls(p)  # missing or unreadable: start fresh, never fail the app
        if not isinstance(data, dict):
            return cls(p)
        theme = data.get("theme")
        configured = data.get("configured_theme")
        return cls(
            p,
            theme if isinstance(theme, str) else None,
            configured if isinstance(configured, str) else None,
        )

    def initial_theme(self, configured: str) -> str:
        """The theme to open with, given the theme from the config file or flags."""
        if self.theme and self.configured_theme == configured:
            return self.theme
        return configured

    def remember_theme(self, theme: str, configured: str) -> None:
        self.theme = theme
        self.configured_theme = configured
        self.save()

    def save(self) -> None:
        data = {"theme": self.theme, "configured_theme": self.configured_theme}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass  # a read-only config dir must not break theme switching
