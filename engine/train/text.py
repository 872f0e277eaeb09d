"""Phase 0: pre-train the umT5 text encoder to read the captions' attributes.

A real umT5 arrives pre-trained; ours starts from random bytes.  Trained only through the
DiT's denoising loss, the third H200 run's encoder learned the background colour (the
largest visual signal) but not the object colour or the motion, which the denoising loss
rewards only weakly early on.  So the encoder first learns, on captions alone (no video, a
few seconds), to make every attribute readable: one small attention-pooling head per
attribute (a learned query over the encoder's states, then a linear classifier) predicts
object colour, shape, background colour and motion.  The heads are thrown away; the DiT's
cross-attention then reads states in which the attributes are already separated.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engine.train.common import (
    Budget, Log, batch_specs, new_text_encoder, preset, run_phase, save_safetensors, text_context,
)
from engine.train.world import BACKGROUND_COLOURS, MOTIONS, OBJECT_COLOURS, SHAPES, ClipSpec, eval_specs

PHASE_ID = 0
ATTRIBUTES = {"colour": OBJECT_COLOURS, "shape": SHAPES, "background": BACKGROUND_COLOURS, "motion": MOTIONS}


class AttributeHeads(nn.Module):
    """Per attribute: softmax-attention pooling of the encoder states with a learned query,
    then a linear classifier.  Masked (zeroed) rows past the prompt are ignored."""

    def __init__(self, dim: int):
        super().__init__()
        self.names = tuple(ATTRIBUTES)
        self.queries = nn.Parameter(torch.randn(len(self.names), dim) / dim ** 0.5)
        self.classify = nn.ModuleList([nn.Linear(dim, len(v)) for v in ATTRIBUTES.values()])

    def forward(self, states: torch.Tensor, live: torch.Tensor) -> dict[str, torch.Tensor]:
        scores = torch.einsum("bld,ad->bal", states, self.queries)  # [B, A, L]
        scores = scores.masked_fill(~live[:, None, :], float("-inf"))
        pooled = torch.einsum("bal,bld->bad", scores.softmax(-1), states)  # [B, A, D]
        return {n: head(pooled[:, i]) for i, (n, head) in enumerate(zip(self.names, self.classify))}


def targets(specs: list[ClipSpec], device) -> dict[str, torch.Tensor]:
    return {n: torch.tensor([values.index(getattr(s, n)) for s in specs], device=device)
            for n, values in ATTRIBUTES.items()}


def attribute_loss(enc, heads: AttributeHeads, specs: list[ClipSpec], text_len: int) -> tuple[torch.Tensor, dict]:
    states = text_context(enc, [s.caption for s in specs], text_len)
    live = states.abs().sum(-1) > 0
    logits = heads(states, live)
    want = targets(specs, states.device)
    loss = sum(F.cross_entropy(logits[n], want[n]) for n in logits)
    acc = {f"acc_{n}": (logits[n].argmax(-1) == want[n]).float().mean() for n in logits}
    return loss, acc


def train_text(out: Path, budget: Budget, *, batch: int = 256, lr: float = 2e-3, device: str = "cpu",
               model: str = "tiny") -> Path:
    """Train ``<out>/text_encoder.safetensors`` (and log held-out caption accuracy)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    p = preset(model)
    enc = new_text_encoder(p).to(dev)
    heads = AttributeHeads(p.text.dim).to(dev)
    opt = torch.optim.AdamW([*enc.parameters(), *heads.parameters()], lr=lr, weight_decay=0.01, betas=(0.9, 0.99))

    def step_loss(step: int):
        return attribute_loss(enc, heads, batch_specs(PHASE_ID, step, batch, 1, 16), p.text.text_len)

    run_phase("text", out, budget, {"text": enc, "heads": heads}, opt, lr, 50, step_loss, log_every=100)
    with torch.no_grad():  # held-out combinations, unseen seeds: the captions the benchmark uses
        _, acc = attribute_loss(enc, heads, eval_specs(240, 1, 16, 16), p.text.text_len)
    Log(out, "text")(held_out={k: round(float(v), 4) for k, v in acc.items()})
    return save_safetensors(enc.state_dict(), out / "text_encoder.safetensors")
