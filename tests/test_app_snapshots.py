"""Snapshot tests of the main screen in both themes (fixed size, fixed session name, no clock).

Update after an intended change with ``pytest tests/test_app_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import pytest

from _app_support import SIZE, make_app, make_settings, open_session, wait_for


@pytest.mark.parametrize("theme", ["turbo-dark", "turbo-light"])
def test_main_screen(snap_compare, tmp_path, theme):
    settings = make_settings(tmp_path).replace(theme=theme)
    session = open_session(settings, "snapshot")
    app = make_app(tmp_path, session=session)
    app.settings = settings

    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: app.engine is not None, what="the engine")
        await pilot.pause()

    try:
        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
    finally:
        session.close()
