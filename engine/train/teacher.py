"""Phase 2: the rectified-flow teacher DiT, conditioned on the pre-trained text encoder.

Same convention as the sampler (engine/sampler.py): ``x_t = (1 - t) x0 + t noise``, the net
predicts ``v = noise - x0`` and sees ``t * 1000``.  ``t`` is drawn logit-normal and shifted
towards 1, with a quarter of the draws on [0.85, 1] where the few-step sampler decides the
layout (:func:`sample_t`).

* The text encoder comes from the ``text`` phase and stays frozen: its states already separate
  the attributes, and the DiT learns to read them.
* 10% of the captions are dropped (the empty prompt), so the teacher also learns the
  unconditional velocity and can be sampled with classifier-free guidance; the student
  distils the guided teacher (as Wan's few-step models distil a guided teacher).
* The clips are encoded once into a latent bank (the VAE encode was most of a step's time);
  each draw re-captions its clip with fresh synonyms and template.
* At the end the guided Euler teacher is scored on validation clips (training combinations,
  unseen seeds) at a few guidance scales; the best scale goes to ``<out>/guidance.json`` for
  the student phase and the benchmark.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from engine import loading
from engine.train.common import (
    Budget, Log, run_phase, batch_specs, batch_video, export_dit, load_weights_into, new_dit, preset, text_context,
)
from engine.train.world import caption

PHASE_ID = 2
GUIDANCE_CANDIDATES = (1.0, 2.0, 3.5, 5.0)
CAPTION_DROP = 0.1


def sample_t(n: int, device, shift: float = 3.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Training times: 10% uniform on [0, 1], 25% uniform on [0.85, 1], the rest logit-normal
    shifted towards 1.  The sampler starts at t = 0.988 (rCM, sigma_max 80), where the input is
    almost pure noise and the layout -- where the object is and which way it moves -- is decided;
    a logit-normal shifted by 2 put only ~1% of draws above 0.95, and the second H200 run's
    teacher got colours right (98%) but drew directions from the noise, not the prompt (20%)."""
    g = dict(generator=generator) if generator is not None else {}
    t = torch.sigmoid(torch.randn(n, **g))
    t = shift * t / (1 + (shift - 1) * t)
    pick = torch.rand(n, **g)
    t = torch.where(pick < 0.10, torch.rand(n, **g), t)
    t = torch.where((pick >= 0.10) & (pick < 0.35), 0.85 + 0.15 * torch.rand(n, **g), t)
    return t.clamp(1e-4, 1.0).to(device)


def encode_batch(vae, specs, size: int, device) -> torch.Tensor:
    with torch.no_grad():
        return vae.encode(batch_video(specs, size, device)).float()


def latent_bank(vae, clips: int, size: int, frames: int, device, seconds: float, chunk: int = 64):
    """Encode up to ``clips`` training clips (phase-2 seeds), stopping after ``seconds``."""
    specs, zs, t0 = [], [], time.monotonic()
    i = 0
    while len(specs) < clips and (i == 0 or time.monotonic() - t0 < seconds):
        part = batch_specs(PHASE_ID, i, chunk, frames, size)[:clips - len(specs)]  # consecutive seeds
        zs.append(encode_batch(vae, part, size, device))
        specs += part
        i += 1
    return specs, torch.cat(zs)


def guidance_path(out: Path) -> Path:
    return Path(out) / "guidance.json"


def read_guidance(out: Path, default: float = 1.0) -> float:
    path = guidance_path(out)
    return float(json.loads(path.read_text())["guidance"]) if path.exists() else default


def train_teacher(out: Path, budget: Budget, *, batch: int = 64, size: int = 192, frames: int = 9,
                  lr: float = 1e-3, device: str = "cpu", model: str = "tiny", bank: int = 6144,
                  bank_seconds: float = 60.0, check_clips: int = 48, amp: bool = False,
                  init: Path | None = None) -> Path:
    """``amp``: the DiT's forward and backward under bfloat16 autocast (float32 weights, optimizer
    and loss), for speed on GPUs.  ``init``: a DiT file to start from instead of fresh weights --
    an earlier teacher, continued with a fresh optimizer when its state file is gone (a state
    file in ``out`` still wins: the phase resumes from it)."""
    out = Path(out)
    dev = torch.device(device)
    p = preset(model)
    vae = loading.load_vae(out / "vae.safetensors", p.vae, device=dev, dtype=torch.float32)
    enc = loading.load_text_encoder(out / "text_encoder.safetensors", p.text, device=dev, dtype=torch.float32)
    enc.requires_grad_(False)
    dit = new_dit(p, "original").to(dev)
    if init is not None:
        load_weights_into(dit, init, p)
    opt = torch.optim.AdamW(dit.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.99))
    t0 = time.monotonic()
    specs, latents = latent_bank(vae, bank, size, frames, dev, bank_seconds)
    Log(out, "teacher")(bank=len(specs), seconds=time.monotonic() - t0)

    def step_loss(step: int):
        gen = torch.Generator().manual_seed(17 + step)  # per step: a resumed run draws the same
        rng = random.Random(f"teacher:{step}")
        idx = torch.randint(len(specs), (batch,), generator=gen)
        captions = ["" if rng.random() < CAPTION_DROP else
                    caption(s.colour, s.shape, s.background, s.motion, rng) for s in (specs[i] for i in idx.tolist())]
        x0 = latents[idx.to(dev)]
        noise = torch.randn(x0.shape, generator=gen).to(dev)
        t = sample_t(batch, dev, generator=gen)
        tb = t.view(-1, 1, 1, 1, 1)
        xt = (1 - tb) * x0 + tb * noise
        with torch.no_grad():
            ctx = text_context(enc, captions, p.text.text_len)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            v = dit(xt, (t * 1000).view(-1, 1), ctx)
        return F.mse_loss(v.float(), noise - x0), {}

    run_phase("teacher", out, budget, {"dit": dit}, opt, lr, 100, step_loss)
    path = export_dit(dit, out / "teacher.safetensors")
    if check_clips:
        pick_guidance(out, dit.eval(), vae, enc, size=size, frames=frames, clips=check_clips, device=dev)
    return path


def pick_guidance(out: Path, dit, vae, enc, *, size: int, frames: int, clips: int, device) -> float:
    """Score the guided Euler teacher on validation clips at each candidate scale; keep the best."""
    from engine.train.evaluate import check

    scores = {g: check(out, "teacher", f"guided-euler-{g}", dit, vae, enc, size=size, frames=frames, clips=clips,
                       device=device, steps=0, guidance=g) for g in GUIDANCE_CANDIDATES}
    best = max(scores, key=lambda g: (scores[g]["attr"], -g))
    guidance_path(out).write_text(json.dumps({"guidance": best, "scores": {str(k): v for k, v in scores.items()}}))
    return best
