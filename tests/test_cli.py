"""CLI wiring: subcommands, reference flag spellings, errors as one line with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from turbo_tui.cli import apply_flags, build_parser, main
from turbo_tui.config import Settings


def test_reference_underscore_spellings():
    args = build_parser().parse_args([
        "--dit_path", "a.pth", "--attention_type", "original", "--sla_topk", "0.2", "--num_frames", "9",
        "--quant_linear", "--sigma_max", "200", "--aspect_ratio", "1:1",
        "generate", "--prompt", "p",
    ])
    s = apply_flags(Settings(), args)
    assert s.launch.dit_path == "a.pth"
    assert s.launch.attention == "original"
    assert s.launch.quant_linear is True
    t = s.default_turn("p")
    assert (t.sla_topk, t.num_frames, t.sigma_max, t.aspect_ratio) == (0.2, 9, 200.0, "1:1")


def test_subcommands_parse():
    p = build_parser()
    assert p.parse_args([]).command is None  # the app
    for cmd in ("app", "repl", "doctor", "config-path"):
        assert p.parse_args([cmd]).command == cmd
    assert p.parse_args(["sessions", "list"]).sessions_args == ["list"]
    assert p.parse_args(["repl", "--batch", "f.txt"]).batch == "f.txt"


def test_bad_config_is_one_line_exit_2(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[engine]\nmodel = 'Wan9'\n")
    assert main(["--config", str(cfg), "config-path"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("turbo-tui: error:") and "engine.model" in err and len(err.splitlines()) == 1


def test_generate_rejects_bad_value_before_loading(tmp_path, capsys):
    # num_frames 10 is not 4k+1: refused before any model is loaded.
    rc = main(["--session-dir", str(tmp_path), "--num-frames", "10", "generate", "--prompt", "x", "--no-session"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "num_frames=10" in err and "4k+1" in err
    assert "loading" not in err


def test_doctor_reports_no_gpu_honestly(tmp_path):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path), CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-m", "turbo_tui.cli", "doctor"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "torch" in text and "no GPU" in text
    assert "sla" in text and "no" in text  # the Triton backends are listed as unusable, with a reason
    assert "not configured" in text
    assert "trained weights ship with turbo-tui" in " ".join(text.split())  # the built-in tiny model


def test_console_entry_point_exists():
    from importlib.metadata import entry_points

    eps = [e for e in entry_points(group="console_scripts") if e.name == "turbo-tui"]
    if not eps:
        pytest.skip("package not installed (pip install -e .)")
    assert eps[0].value == "turbo_tui.cli:main"


def test_flags_after_the_subcommand_and_before():
    p = build_parser()
    s = apply_flags(Settings(), p.parse_args(["--seed", "7", "generate", "--prompt", "x", "--num_steps", "2",
                                              "--attention-type", "original"]))
    t = s.default_turn("x")
    assert (t.seed, t.num_steps) == (7, 2)  # the subcommand's copy of --seed does not reset it
    assert s.launch.attention == "original"


def test_sessions_help_reaches_its_own_parser(capsys):
    assert main(["sessions", "--help"]) == 0
    assert "turbo-tui sessions" in capsys.readouterr().out


def test_doctor_checks_checkpoint_files_and_size_class(tmp_path):
    from turbo_tui.commands.doctor import _checkpoint_rows

    dit = tmp_path / "TurboWan2.1-T2V-1.3B-480P.pth"
    with open(dit, "wb") as f:  # a sparse file of the published bf16 size: costs no disk
        f.truncate(2_840_000_000)
    vae = tmp_path / "Wan2.1_VAE.pth"
    vae.write_bytes(b"x" * 100)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[engine]\nmodel = "Wan2.1-1.3B"\n[checkpoints]\ndit = "{dit}"\nvae = "{vae}"\n'
                   f'text_encoder = "{tmp_path / "missing.pth"}"\n')
    from turbo_tui.config import load_settings

    rows = {role: status for role, _, status in _checkpoint_rows(load_settings(cfg))}
    assert "1.3B bf16" in rows["dit"]
    assert "unexpected size" in rows["vae"]
    assert "not found" in rows["text_encoder"]
    assert rows["high_noise"] == "not configured"
