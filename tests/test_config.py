"""Configuration: defaults < TOML file < flags; unknown keys and wrong types name key and file."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from turbo_tui.cli import apply_flags, build_parser
from turbo_tui.config import Settings, load_settings


def write(tmp_path, text):
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_defaults_without_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none"))
    s = load_settings()
    assert s == Settings()
    assert s.launch.model == "tiny"
    turn = s.default_turn("a cat")
    assert (turn.resolution, turn.num_frames, turn.num_steps) == ("192p", 9, 3)  # the trained tiny: 3 steps
    from engine.api import default_request

    assert default_request("tiny-i2v").num_steps == 4 and default_request("Wan2.1-1.3B").num_steps == 4


def test_file_values_are_read(tmp_path):
    p = write(tmp_path, """
[engine]
model = "Wan2.1-1.3B"
attention = "original"
quant_linear = true
[checkpoints]
dit = "~/ckpt/dit.pth"
[turn]
num_steps = 2
sla_topk = 0.15
sigma_max = 120
[ui]
theme = "turbo-light"
[sessions]
dir = "/tmp/sessions-x"
""")
    s = load_settings(p)
    assert s.launch.model == "Wan2.1-1.3B"
    assert s.launch.attention == "original"
    assert s.launch.quant_linear is True
    assert s.launch.dit_path.endswith("/ckpt/dit.pth") and not s.launch.dit_path.startswith("~")
    t = s.default_turn("x")
    assert (t.num_steps, t.sla_topk, t.sigma_max, t.resolution) == (2, 0.15, 120.0, "480p")
    assert s.theme == "turbo-light"
    assert str(s.sessions_root) == "/tmp/sessions-x"
    assert s.config_path == str(p)


def test_flags_override_file(tmp_path):
    p = write(tmp_path, '[engine]\nattention = "original"\n[turn]\nnum_steps = 2\nseed = 5\n')
    args = build_parser().parse_args(["--attention-type", "sla", "--num_steps", "3", "doctor"])
    s = apply_flags(load_settings(p), args)
    assert s.launch.attention == "sla"
    t = s.default_turn("x")
    assert t.num_steps == 3 and t.seed == 5  # flag wins; untouched file value stays


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[engine]\nmodle = 'tiny'\n", "engine.modle"),
        ("[engine]\nquant_linear = 'yes'\n", "engine.quant_linear"),
        ("[engine]\nattention = 'fast'\n", "engine.attention"),
        ("[turn]\nnum_steps = 9\n", "turn.num_steps"),
        ("[turn]\nsla_topk = 'high'\n", "turn.sla_topk"),
        ("[checkpoints]\ndit = 3\n", "checkpoints.dit"),
        ("[checkpoints]\nunet = 'x'\n", "checkpoints.unet"),
        ("[gui]\ntheme = 'x'\n", "'gui'"),
        ("[ui]\ntheme = 7\n", "ui.theme"),
        ("model = 'tiny'\n", "'model'"),
        ("[engine\n", "not valid TOML"),
    ],
)
def test_bad_config_names_key_and_file(tmp_path, text, needle):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_settings(p)
    msg = str(e.value)
    assert needle in msg and str(p) in msg
    assert "\n" not in msg


def test_missing_explicit_config(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")
