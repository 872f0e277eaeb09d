"""Merge fine-tune deltas into a base checkpoint: ``base + (tuned - pretrained)``.

The reference (TurboDiffusion) fine-tunes SLA on a pretrained model and adds the resulting
weight deltas to another model of the same architecture (e.g. the rCM-distilled one).  Keys
only the tuned file has (``proj_l``, new in SLA) are taken from it as they are; keys the tuned
file lacks are kept from the base.  Only float tensors merge; the arithmetic runs in float32
and the result takes the base's dtype.

    python -m engine.train merge BASE TUNED PRETRAINED OUT [--quant]
"""

from __future__ import annotations

from typing import Mapping

import torch


def merge_state_dicts(base: Mapping[str, torch.Tensor], tuned: Mapping[str, torch.Tensor],
                      pretrained: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for k, t in tuned.items():
        if k not in base:
            if k in pretrained:
                raise ValueError(f"'{k}' is in the tuned and pretrained checkpoints but not in the base")
            out[k] = t.clone()  # new in the fine-tune (proj_l)
            continue
        b = base[k]
        if not (b.is_floating_point() and t.is_floating_point()):
            raise ValueError(f"'{k}' is not a float tensor ({b.dtype}/{t.dtype}): merge unquantized files")
        if k not in pretrained:
            raise ValueError(f"'{k}' is in the base and tuned checkpoints but not in the pretrained one")
        p = pretrained[k]
        if not (b.shape == t.shape == p.shape):
            raise ValueError(f"'{k}': shapes differ (base {tuple(b.shape)}, tuned {tuple(t.shape)}, "
                             f"pretrained {tuple(p.shape)})")
        out[k] = (b.float() + (t.float() - p.float().to(t.device))).to(b.dtype)
    for k, b in base.items():
        out.setdefault(k, b.clone())
    return out


def merge_files(base: str, tuned: str, pretrained: str, out: str, model: str = "tiny", quant: bool = False) -> str:
    """Merge three DiT files (any layout the loaders read, unquantized) and write ``out``
    (SLA layout when the tuned file has proj_l; ``-quant`` layout with ``quant``)."""
    from engine.checkpoint import read_state_dict
    from engine.loading import PROJ_L, load_dit
    from engine.train.common import export_dit, preset, save_safetensors

    merged = merge_state_dicts(read_state_dict(base), read_state_dict(tuned), read_state_dict(pretrained))
    if not quant:
        return str(save_safetensors(merged, out))
    tmp = out + ".plain.safetensors"
    save_safetensors(merged, tmp)
    attention = "sla" if any(PROJ_L in k for k in merged) else "original"
    dit = load_dit(tmp, preset(model).dit, attention=attention, dtype=torch.float32)
    import os

    os.remove(tmp)
    return str(export_dit(dit, out, quant=True))
