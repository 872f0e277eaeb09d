"""Weights shipped inside the package: the trained built-in ``tiny`` model (engine/train).

``tiny_dit.safetensors`` is the few-step student after the SLA fine-tune (SLA layout, with
``proj_l``); ``tiny_dit-quant.safetensors`` its ``-quant`` twin; ``tiny_vae`` and
``tiny_text_encoder`` the VAE and umT5 encoder.  ``bench/`` holds the teacher and the
pre-fine-tune student, used only by ``bench/quality.py`` (not installed with the package).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def shipped_checkpoints(model: str, quant_linear: bool = False) -> dict[str, str]:
    """{role: path} of the shipped files for ``model`` (roles as in LaunchConfig: dit, vae,
    text_encoder); empty when the model has no shipped weights or a file is missing."""
    if model != "tiny":
        return {}
    files = {"dit": HERE / ("tiny_dit-quant.safetensors" if quant_linear else "tiny_dit.safetensors"),
             "vae": HERE / "tiny_vae.safetensors", "text_encoder": HERE / "tiny_text_encoder.safetensors"}
    if not all(p.is_file() for p in files.values()):
        return {}
    return {role: str(p) for role, p in files.items()}
