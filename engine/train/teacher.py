"""Phase 2: the rectified-flow teacher DiT, trained jointly with the text encoder.

Same convention as the sampler (engine/sampler.py): ``x_t = (1 - t) x0 + t noise``, the net
predicts ``v = noise - x0`` and sees ``t * 1000``.  ``t`` is drawn logit-normal and shifted
towards 1 (the rCM schedule spends its few steps at t >= 0.6), mixed with 10% uniform.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from engine import loading
from engine.train.common import (
    Budget, run_phase, batch_specs, batch_video, export_dit, new_dit, new_text_encoder, preset,
    save_safetensors, text_context,
)

PHASE_ID = 2


def sample_t(n: int, device, shift: float = 2.0) -> torch.Tensor:
    t = torch.sigmoid(torch.randn(n, device=device))
    t = shift * t / (1 + (shift - 1) * t)
    uniform = torch.rand(n, device=device)
    return torch.where(torch.rand(n, device=device) < 0.1, uniform, t).clamp(1e-4, 1.0)


def encode_batch(vae, specs, size: int, device) -> torch.Tensor:
    with torch.no_grad():
        return vae.encode(batch_video(specs, size, device)).float()


def train_teacher(out: Path, budget: Budget, *, batch: int = 48, size: int = 192, frames: int = 9,
                  lr: float = 1e-3, device: str = "cpu", model: str = "tiny") -> tuple[Path, Path]:
    out = Path(out)
    dev = torch.device(device)
    p = preset(model)
    vae = loading.load_vae(out / "vae.safetensors", p.vae, device=dev, dtype=torch.float32)
    dit = new_dit(p, "original").to(dev)
    enc = new_text_encoder(p).to(dev)
    params = [{"params": dit.parameters()}, {"params": enc.parameters()}]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.99))

    def step_loss(step: int):
        specs = batch_specs(PHASE_ID, step, batch, frames, size)
        x0 = encode_batch(vae, specs, size, dev)
        noise = torch.randn_like(x0)
        t = sample_t(batch, dev)
        tb = t.view(-1, 1, 1, 1, 1)
        xt = (1 - tb) * x0 + tb * noise
        ctx = text_context(enc, [s.caption for s in specs], p.text.text_len)
        v = dit(xt, (t * 1000).view(-1, 1), ctx)
        return F.mse_loss(v, noise - x0), {}

    run_phase("teacher", out, budget, {"dit": dit, "text": enc}, opt, lr, 100, step_loss)
    return export_dit(dit, out / "teacher.safetensors"), save_safetensors(enc.state_dict(), out / "text_encoder.safetensors")
