"""Phase 2: the rectified-flow teacher DiT, trained jointly with the text encoder.

Same convention as the sampler (engine/sampler.py): ``x_t = (1 - t) x0 + t noise``, the net
predicts ``v = noise - x0`` and sees ``t * 1000``.  ``t`` is drawn logit-normal and shifted
towards 1 (the rCM schedule spends its few steps at t >= 0.6), mixed with 10% uniform.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from engine import loading
from engine.train.common import (
    Budget, Log, State, batch_specs, batch_video, export_dit, lr_at, new_dit, new_text_encoder, preset,
    reference_kernels, save_safetensors, text_context,
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
    state, log = State(out, "teacher"), Log(out, "teacher")
    step, elapsed = state.load({"dit": dit, "text": enc}, opt)
    t_start = time.monotonic() - elapsed
    ema = None
    with reference_kernels():
        while step < budget.steps and (time.monotonic() - t_start) < budget.seconds:
            frac = budget.fraction(step, time.monotonic() - t_start)
            for g in opt.param_groups:
                g["lr"] = lr_at(lr, step, frac, warmup=100)
            specs = batch_specs(PHASE_ID, step, batch, frames, size)
            x0 = encode_batch(vae, specs, size, dev)
            noise = torch.randn_like(x0)
            t = sample_t(batch, dev)
            tb = t.view(-1, 1, 1, 1, 1)
            xt = (1 - tb) * x0 + tb * noise
            ctx = text_context(enc, [s.caption for s in specs], p.text.text_len)
            v = dit(xt, (t * 1000).view(-1, 1), ctx)
            loss = F.mse_loss(v, noise - x0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(dit.parameters()) + list(enc.parameters()), 1.0)
            opt.step()
            step += 1
            ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
            if step % 50 == 0 or step == 1:
                log(step=step, t=time.monotonic() - t_start, loss=ema)
            if state.due(60):
                state.save({"dit": dit, "text": enc}, opt, step, time.monotonic() - t_start)
    state.save({"dit": dit, "text": enc}, opt, step, time.monotonic() - t_start)
    log(step=step, t=time.monotonic() - t_start, done=True)
    return export_dit(dit, out / "teacher.safetensors"), save_safetensors(enc.state_dict(), out / "text_encoder.safetensors")
