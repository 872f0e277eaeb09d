"""Weights shipped inside the package: the trained built-in ``tiny`` model (engine/train).

``tiny_dit.safetensors`` is the few-step student (dense-trained; SLA layout with ``proj_l``
zero), served for dense attention; ``tiny_dit-sla.safetensors`` the same student after the
SLA fine-tune, served for ``sla``/``sagesla``/``spargeattn``; ``*-quant`` their int8 twins; ``tiny_vae`` and
``tiny_text_encoder`` the VAE and umT5 encoder; float tensors stored in float16
(``python -m engine.train install --dtype float16 --no-teacher``).  The teacher is not shipped
(it would take the package over its 25 MB budget): ``bench/quality.py --run DIR`` reads it from a
training run, and an install with the teacher puts it and its guidance scale in ``bench/``.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def shipped_checkpoints(model: str, quant_linear: bool = False, attention: str = "original") -> dict[str, str]:
    """{role: path} of the shipped files for ``model`` (roles as in LaunchConfig: dit, vae,
    text_encoder), the DiT trained for ``attention``; empty when the model has no shipped
    weights or a file is missing."""
    if model != "tiny":
        return {}
    stem = "tiny_dit" if attention == "original" else "tiny_dit-sla"
    files = {"dit": HERE / f"{stem}{'-quant' if quant_linear else ''}.safetensors",
             "vae": HERE / "tiny_vae.safetensors", "text_encoder": HERE / "tiny_text_encoder.safetensors"}
    if not all(p.is_file() for p in files.values()):
        return {}
    return {role: str(p) for role, p in files.items()}
