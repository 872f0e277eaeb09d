"""The ``turbo-tui`` command: ``turbo-tui`` opens the Textual app; subcommands do the rest.

Subcommands import their implementation lazily, so ``turbo-tui doctor`` and
``turbo-tui --help`` stay fast and the UI commands never import torch themselves.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from engine.api import ASPECT_RATIOS, ATTENTION_CHOICES, MODELS, RESOLUTIONS, LaunchConfig
from engine.errors import TurboError
from turbo_tui.config import Settings, load_settings


def _flag(group: Any, name: str, **kw: Any) -> None:
    """Add ``--some-flag`` with the reference's ``--some_flag`` spelling as an alias.

    Defaults are suppressed on subcommand parsers (``group.suppress``) so that a flag given
    before the subcommand is not reset by the subcommand's own copy of it.
    """
    spellings = [f"--{name}"]
    if "-" in name:
        spellings.append("--" + name.replace("-", "_"))
    default = argparse.SUPPRESS if getattr(group, "suppress", False) else None
    group.add_argument(*spellings, dest=name.replace("-", "_"), default=default, **kw)


def _group(p: argparse.ArgumentParser, title: str, suppress: bool):
    g = p.add_argument_group(title)
    g.suppress = suppress
    return g


def add_launch_flags(p: argparse.ArgumentParser, suppress: bool = False) -> None:
    g = _group(p, "model and launch (fixed while the engine is loaded)", suppress)
    _flag(g, "model", choices=MODELS, help="model preset (default: tiny, built in)")
    _flag(g, "dit-path", metavar="FILE", help="Wan2.1 T2V DiT checkpoint (.pth or .safetensors)")
    _flag(g, "high-noise-model-path", metavar="FILE", help="Wan2.2 I2V high-noise expert")
    _flag(g, "low-noise-model-path", metavar="FILE", help="Wan2.2 I2V low-noise expert")
    _flag(g, "vae-path", metavar="FILE", help="Wan2.1 VAE checkpoint (Wan2.1_VAE.pth)")
    _flag(g, "text-encoder-path", metavar="FILE", help="umT5-XXL encoder (models_t5_umt5-xxl-enc-bf16.pth)")
    _flag(g, "tokenizer-path", metavar="DIR", help="google/umt5-xxl tokenizer folder")
    _flag(g, "attention-type", choices=ATTENTION_CHOICES,
          help="attention backend (default auto: original for tiny, sla for Wan)")
    _flag(g, "quant-linear", action="store_const", const=True, help="W8A8 int8 linear layers")
    _flag(g, "default-norm", action="store_const", const=True, help="plain torch norms, not fused kernels")
    _flag(g, "device", help="auto | cpu | cuda | cuda:N")
    _flag(g, "dtype", choices=("auto", "bfloat16", "float16", "float32"))
    _flag(g, "offload-text-encoder", action="store_const", const=True, help="umT5 to CPU after encoding")
    _flag(g, "offload-inactive-expert", action="store_const", const=True, help="I2V: unused expert on the CPU")
    _flag(g, "compile", action="store_const", const=True, help="CUDA: replay the DiT forward as a CUDA graph")
    _flag(g, "random-weights", action="store_const", const=True,
          help="random weights of the real shapes, no checkpoint files (benchmarks only)")


def add_turn_flags(p: argparse.ArgumentParser, suppress: bool = False) -> None:
    g = _group(p, "per-turn parameters (defaults for the first turn)", suppress)
    _flag(g, "seed", type=int)
    _flag(g, "num-steps", type=int, help="rCM steps, 1-4")
    _flag(g, "sla-topk", type=float, help="SLA key-block fraction in (0, 1]")
    _flag(g, "sigma-max", type=float, help="initial sigma (80 T2V, 200 I2V)")
    _flag(g, "num-frames", type=int, help="4k+1 frames")
    _flag(g, "num-samples", type=int)
    _flag(g, "resolution", choices=tuple(RESOLUTIONS))
    _flag(g, "aspect-ratio", choices=ASPECT_RATIOS)
    _flag(g, "adaptive-resolution", action="store_const", const=True, help="I2V: keep the image's aspect ratio")
    _flag(g, "image-path", metavar="IMAGE", help="I2V input image")
    _flag(g, "boundary", type=float, help="I2V expert switch time (default 0.9)")
    _flag(g, "ode", action="store_const", const=True, help="ODE update instead of SDE")


LAUNCH_FLAG_FIELDS = {
    "model": "model", "dit_path": "dit_path", "high_noise_model_path": "high_noise_model_path",
    "low_noise_model_path": "low_noise_model_path", "vae_path": "vae_path",
    "text_encoder_path": "text_encoder_path", "tokenizer_path": "tokenizer_path",
    "attention_type": "attention", "quant_linear": "quant_linear", "default_norm": "default_norm",
    "device": "device", "dtype": "dtype", "offload_text_encoder": "offload_text_encoder", "compile": "compile",
    "offload_inactive_expert": "offload_inactive_expert", "random_weights": "random_weights",
}
TURN_FLAG_FIELDS = (
    "seed", "num_steps", "sla_topk", "sigma_max", "num_frames", "num_samples", "resolution",
    "aspect_ratio", "adaptive_resolution", "image_path", "boundary", "ode",
)


def apply_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """Command-line flags override the file; a flag not given leaves the file's value."""
    launch_kw = {
        field: getattr(args, dest)
        for dest, field in LAUNCH_FLAG_FIELDS.items()
        if getattr(args, dest, None) is not None
    }
    launch: LaunchConfig = settings.launch.replace(**launch_kw)
    launch.validate()
    turn = dict(settings.turn_overrides)
    turn.update({k: getattr(args, k) for k in TURN_FLAG_FIELDS if getattr(args, k, None) is not None})
    changes: dict[str, Any] = {"launch": launch, "turn_overrides": turn}
    if getattr(args, "session_dir", None):
        changes["session_dir"] = args.session_dir
    if getattr(args, "theme", None):
        changes["theme"] = args.theme
    return settings.replace(**changes)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="turbo-tui",
        description="Fast video generation in the terminal (TurboDiffusion-style Wan models).",
    )
    p.add_argument("--config", metavar="FILE", help="TOML config file (default: the user config dir)")
    p.add_argument("--session-dir", "--session_dir", dest="session_dir", metavar="DIR",
                   help="folder that holds the sessions")
    p.add_argument("--theme", help="UI theme (turbo-dark, turbo-light)")
    p.add_argument("--session", metavar="NAME", help="session to open or create (app and repl)")
    add_launch_flags(p)
    add_turn_flags(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    a = sub.add_parser("app", help="open the Textual app (the default)")

    r = sub.add_parser("repl", help="line-based loop for plain terminals and scripts")
    r.add_argument("--batch", metavar="FILE", help="run each line of FILE as a turn, then exit")

    g = sub.add_parser("generate", help="one turn from the command line, then exit")
    for sp in (a, r, g):  # the same flags also work after the subcommand
        add_launch_flags(sp, suppress=True)
        add_turn_flags(sp, suppress=True)
    g.add_argument("--prompt", required=True)
    g.add_argument("--out", "--save-path", "--save_path", dest="out", metavar="PATH",
                   help="output .mp4 path (or folder); default: the current folder")
    g.add_argument("--no-session", action="store_true", help="do not record the turn in a session")

    s = sub.add_parser("sessions", add_help=False, help="list, show, export, import, replay or delete sessions")
    s.add_argument("sessions_args", nargs=argparse.REMAINDER, help="see `turbo-tui sessions --help`")

    sub.add_parser("doctor", help="what this machine can run, and which checkpoints are configured")
    sub.add_parser("config-path", help="print where the config file is read from")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "sessions":  # its own parser reads everything after the word (--help too)
        args.sessions_args = list(args.sessions_args) + extra
    elif extra:
        parser.error("unrecognized arguments: " + " ".join(extra))
    try:
        settings = apply_flags(load_settings(args.config), args)
        return _dispatch(args, settings)
    except TurboError as e:
        print(f"turbo-tui: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("turbo-tui: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    cmd = args.command or "app"
    if cmd == "app":
        from turbo_tui.app import run_app

        return run_app(settings, session_name=args.session)
    if cmd == "repl":
        from turbo_tui.repl import run_repl

        return run_repl(settings, session_name=args.session, batch=args.batch)
    if cmd == "generate":
        from turbo_tui.commands.generate import run_generate

        return run_generate(settings, args)
    if cmd == "sessions":
        from turbo_tui.commands.sessions import run_sessions

        return run_sessions(settings, args.sessions_args)
    if cmd == "doctor":
        from turbo_tui.commands.doctor import run_doctor

        return run_doctor(settings)
    if cmd == "config-path":
        from turbo_tui.config import default_config_path

        print(args.config or default_config_path())
        return 0
    raise AssertionError(cmd)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
