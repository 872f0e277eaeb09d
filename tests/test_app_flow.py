"""End-to-end Pilot tests of the Textual app on the real tiny model (CPU)."""

from __future__ import annotations

import os

import pytest

from _app_support import SIZE, generate, make_app, open_session, make_settings, set_input, type_prompt, wait_for, wait_idle
from turbo_tui.widgets.history import HistoryView
from turbo_tui.widgets.panel import Slider


async def test_turn_end_to_end_then_fork(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine is not None, what="the engine")
        await type_prompt(pilot, "a red fox in snow")

        # steps: slider by keys (1 -> 2)
        app.query_one("#slider-num_steps", Slider).focus()
        await pilot.press("right")
        # top-k: typed exactly
        await set_input(pilot, "#input-sla_topk", "0.15")
        # sigma_max: slider by keys on its log scale, from the T2V default of 80
        app.query_one("#slider-sigma_max", Slider).focus()
        await pilot.press("left", "left")
        # seed: typed
        await set_input(pilot, "#input-seed", "1234")
        await pilot.pause()
        assert app.query_one("#input-num_steps").value == "2"
        sigma = float(app.query_one("#input-sigma_max").value)
        assert 1 < sigma < 80

        await generate(pilot, app, "ctrl+g")

        # progress events arrived, with per-step previews
        stages = {e.stage for e in app.progress_events}
        assert {"encode", "denoise", "decode", "write"} <= stages
        steps = [e for e in app.progress_events if e.stage == "denoise" and e.status == "step"]
        assert [e.step for e in steps] == [1, 2]
        assert any(e.preview is not None for e in steps)

        # the turn is in the history with its parameters and an mp4 on disk
        history = app.query_one(HistoryView)
        assert len(history.rows) == 1
        row = history.rows[0]
        assert row.status == "done", row.error
        r = row.request
        assert (r.prompt, r.num_steps, r.sla_topk, r.seed, r.sigma_max) == ("a red fox in snow", 2, 0.15, 1234, sigma)
        assert row.video_paths and all(os.path.getsize(p) > 0 for p in row.video_paths)
        assert row.video_paths[0].endswith(".mp4")
        assert "done" in str(app.query_one("#progress-stage").render())

        # fork it: load its parameters, change the seed, generate -> a child in the tree
        app.query_one("#prompt").text = "something else"
        app.query_one("#history-tree").focus()
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert app.query_one("#prompt").text == "a red fox in snow"
        assert app.fork_parent == row.id
        await set_input(pilot, "#input-seed", "99")
        await generate(pilot, app, "f5")
        assert len(history.rows) == 2
        child = history.rows[1]
        assert (child.kind, child.parent_id, child.status) == ("fork", row.id, "done")
        assert child.request.seed == 99 and child.request.sla_topk == 0.15
        tree = history.tree
        assert [n.data.id for n in tree.root.children] == [row.id]
        assert [n.data.id for n in tree.root.children[0].children] == [child.id]

        # star and filter: only the starred turn stays visible
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert history.row(child.id).starred
        await pilot.click("#history-starred")
        await pilot.pause()
        assert [r.id for r in history.visible_rows()] == [child.id]

        # the open-in-player key hands the mp4 to the opener
        await pilot.press("ctrl+o")
        assert app.opened == [child.video_paths[0]]

        # replay the starred fork: a new linked turn with the same seed, and the same video
        await generate(pilot, app, "ctrl+r")
        replay = app.session.turns()[-1]
        assert (replay.kind, replay.parent_id, replay.status) == ("replay", child.id, "done")
        assert replay.turn_request().seed == 99
        assert replay.replay_match is True
    app.session.close()


async def test_cancel_mid_turn_keeps_earlier_turns(tmp_path):
    app = make_app(tmp_path, num_steps=4)
    app.hold_after_step = 1  # the worker pauses after step 1 until Esc has been pressed
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine is not None, what="the engine")
        await type_prompt(pilot, "a turn to cancel")
        await pilot.press("f5")
        await wait_for(pilot, app.held.is_set, what="the first step")
        await pilot.press("escape")
        app.release.set()
        await wait_idle(pilot, app)
        rows = app.query_one(HistoryView).rows
        assert [r.status for r in rows] == ["cancelled"]
        steps = [e.step for e in app.progress_events if e.stage == "denoise" and e.status == "step"]
        assert steps == [1]
        assert not any(e.stage == "write" for e in app.progress_events)
        assert "cancelled" in str(app.query_one("#progress-stage").render())
    app.session.close()


async def test_invalid_value_shows_message_and_starts_no_turn(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine is not None, what="the engine")
        await type_prompt(pilot, "a valid prompt")
        await set_input(pilot, "#input-num_frames", "4")
        field = app.query_one("#field-num_frames")
        assert field.has_class("-invalid")
        message = str(app.query_one("#error-num_frames").render())
        assert "num_frames=4" in message and "4k+1" in message
        await pilot.press("ctrl+g")
        await pilot.pause(0.2)
        assert not app.busy
        assert len(app.session.turns()) == 0
        assert any("num_frames" in n.message for n in app._notifications)

        # fixing it clears the message; an empty prompt is refused the same way
        await set_input(pilot, "#input-num_frames", "1")
        assert not field.has_class("-invalid")
        await type_prompt(pilot, "")
        await pilot.press("ctrl+g")
        await pilot.pause(0.2)
        assert app.query_one("#prompt-editor").has_class("-invalid")
        assert len(app.session.turns()) == 0
    app.session.close()


async def test_theme_switch_is_remembered(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "turbo-dark"
        await pilot.press("ctrl+t")
        assert app.theme == "turbo-light"
    app.session.close()
    assert (tmp_path / "config" / "ui-state.json").is_file()

    again = make_app(tmp_path)
    async with again.run_test(size=SIZE) as pilot:
        assert again.theme == "turbo-light"
        await pilot.press("ctrl+t")
        assert again.theme == "turbo-dark"
    again.session.close()


async def test_resumed_session_shows_past_turns_and_palette_lists_actions(tmp_path):
    from engine.api import TurnRequest

    settings = make_settings(tmp_path)
    session = open_session(settings, "resume")
    old = session.begin_turn(TurnRequest(prompt="an old turn", seed=5))
    session.fail_turn(old, "engine exploded", status="failed")
    session.close()

    app = make_app(tmp_path, session=open_session(settings, "resume"), engine=False)
    async with app.run_test(size=SIZE) as pilot:
        rows = app.query_one(HistoryView).rows
        assert [(r.id, r.prompt, r.status) for r in rows] == [(old, "an old turn", "failed")]
        assert "engine exploded" in str(app.query_one("#history-detail").render())
        # generating before the model is loaded is refused with a notification
        await pilot.press("f5")
        assert not app.busy

        from turbo_tui.palette import ACTIONS, ActionCommands

        titles = [h[0] for h in ActionCommands(app.screen)._hits()]
        assert titles == [a.title for a in ACTIONS]
        for a in ACTIONS:
            name = a.action.split("(")[0]
            assert hasattr(app, f"action_{name}"), name

        # export (F8) writes a zip of the session under the exports folder
        await pilot.press("f8")
        await wait_for(pilot, lambda: list((tmp_path / "exports").glob("resume-*.zip")), timeout=30,
                       what="the export")
    app.session.close()


async def test_engine_that_cannot_load_is_reported_and_the_app_keeps_running(tmp_path):
    from engine.api import LaunchConfig
    from _app_support import RecordingApp

    settings = make_settings(tmp_path).replace(launch=LaunchConfig(model="Wan2.1-1.3B"))  # no checkpoints
    session = open_session(settings)
    app = RecordingApp(settings, session, state_path=tmp_path / "config" / "ui-state.json", engine=None,
                       exports_dir=tmp_path / "exports")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine_error is not None, 60, "the load to fail")
        assert "no DiT checkpoint configured" in app.engine_error
        await type_prompt(pilot, "a fox")
        await pilot.press("f5")
        await pilot.pause()
        texts = [str(n.message) for n in app._notifications]
        assert any("no model is loaded" in t and "restart" in t for t in texts), texts
        assert not app.busy and len(session.turns()) == 0
    session.close()
