"""The app's small parts on their own: slider scale, slider keys and mouse, theme memory, half blocks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from textual.app import App, ComposeResult

from turbo_tui.params import SLIDERS, SliderSpec, summarize
from turbo_tui.ui_state import UiState
from turbo_tui.widgets.panel import Slider
from turbo_tui.widgets.preview.halfblock import HalfBlock, RGBFrame, fit


def test_import_loads_neither_torch_nor_triton_nor_terminal_probes():
    mods = ["turbo_tui.app", "turbo_tui.widgets.panel", "turbo_tui.widgets.history", "turbo_tui.widgets.preview",
            "turbo_tui.runner", "turbo_tui.palette", "themes"]
    code = ("import sys, importlib\n"
            f"for m in {mods!r}: importlib.import_module(m)\n"
            "print(','.join(m for m in ('torch', 'triton', 'textual_image') if m in sys.modules) or 'clean')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"


def test_log_scale_for_sigma_max():
    spec = SLIDERS["sigma_max"]
    assert spec.to_fraction(1) == 0 and spec.to_fraction(1600) == 1
    assert 0.55 < spec.to_fraction(80) < 0.62  # log scale: 80 sits past the middle, not at 5%
    assert spec.from_fraction(0.5) == 40.0
    up = spec.nudge(80, 1)
    assert 80 < up < 100 and spec.nudge(up, -1) == pytest.approx(80, rel=0.02)
    assert spec.nudge(1600, 5) == 1600 and spec.nudge(1, -5) == 1


def test_topk_marks_and_steps():
    spec = SLIDERS["sla_topk"]
    assert spec.marks == (0.1, 0.15) and spec.recommended == (0.1, 0.15)
    assert (spec.minimum, spec.maximum) == (0.02, 1.0)
    assert spec.nudge(0.1, 1) == 0.11 and spec.nudge(0.02, -1) == 0.02
    steps = SLIDERS["num_steps"]
    assert [steps.nudge(1, n) for n in (1, 2, 3, 9)] == [2, 3, 4, 4]


class SliderApp(App):
    def __init__(self, spec: SliderSpec, value: float) -> None:
        super().__init__()
        self.spec, self.start, self.changes = spec, value, []

    def compose(self) -> ComposeResult:
        yield Slider(self.spec, self.start, id="s")

    def on_slider_changed(self, event: Slider.Changed) -> None:
        self.changes.append(event.value)


async def test_slider_keys_and_mouse():
    app = SliderApp(SLIDERS["sla_topk"], 0.1)
    async with app.run_test(size=(51, 3)) as pilot:
        slider = app.query_one(Slider)
        slider.focus()
        await pilot.press("right", "right", "left")
        assert slider.value == 0.11
        await pilot.press("end")
        assert slider.value == 1.0
        await pilot.press("pagedown")
        assert slider.value == pytest.approx(0.9, abs=0.011)
        await pilot.press("home")
        assert slider.value == 0.02
        await pilot.click("#s", offset=(50, 0))  # the right end of the track
        assert slider.value == 1.0
        await pilot.click("#s", offset=(25, 0))  # the middle
        assert slider.value == pytest.approx(0.51, abs=0.011)
        assert app.changes[:3] == [0.11, 0.12, 0.11]
        text = slider.render().plain
        assert len(text) == 51 and text.count("●") == 1 and ("┊" in text or "┼" in text)


def test_theme_memory(tmp_path):
    path = tmp_path / "cfg" / "ui-state.json"
    state = UiState.load(path)
    assert state.initial_theme("turbo-dark") == "turbo-dark"
    state.remember_theme("turbo-light", configured="turbo-dark")
    assert json.loads(path.read_text())["theme"] == "turbo-light"
    again = UiState.load(path)
    assert again.initial_theme("turbo-dark") == "turbo-light"
    # a changed [ui] theme (or --theme) wins over the remembered choice
    assert again.initial_theme("textual-dark") == "textual-dark"
    path.write_text("not json")
    assert UiState.load(path).initial_theme("turbo-dark") == "turbo-dark"


def test_half_blocks_keep_the_shape():
    assert fit(320, 192, 40, 40) == (40, 12)
    assert fit(192, 192, 100, 10) == (20, 10)
    frame = RGBFrame(2, 2, bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]))
    lines = HalfBlock(frame, 2, 1).lines()
    assert len(lines) == 1 and [s.text for s in lines[0]] == ["▀", "▀"]
    assert lines[0][0].style.color.triplet == (255, 0, 0)
    assert lines[0][0].style.bgcolor.triplet == (0, 0, 255)


def test_summary_line():
    from engine.api import TurnRequest

    line = summarize(TurnRequest(prompt="x", seed=3, num_steps=2, sla_topk=0.15, sigma_max=None, ode=True))
    assert line.startswith("seed 3 · 2 steps · top-k 0.15 · σ 80") and "ODE" in line


async def test_finished_video_loops_a_few_times_then_rests():
    from textual.app import App

    from turbo_tui.widgets.preview.halfblock import RGBFrame
    from turbo_tui.widgets.preview.preview import MAX_LOOPS, VideoPreview

    class Host(App):
        def compose(self):
            yield VideoPreview(graphics="halfblock")

    frames = [RGBFrame(4, 4, bytes([v]) * 48) for v in (0, 120, 240)]
    app = Host()
    async with app.run_test(size=(40, 12)) as pilot:
        preview = app.query_one(VideoPreview)
        preview._play(frames, 64.0, "clip")  # played at most 16 fps: 3 frames a loop
        assert preview._timer is not None
        await pilot.pause(MAX_LOOPS * 3 / 16 + 0.6)
        assert preview._timer is None and preview.index == 0  # resting, nothing redraws
        preview.action_toggle_play()  # F6 / Space plays it again
        assert preview._timer is not None
        preview._stop()
