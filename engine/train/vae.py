"""Phase 1: the Wan VAE (tiny config) as a deterministic autoencoder of synthetic clips.

Loss: L1 + MSE of the reconstruction (object pixels weighted up, :func:`object_weight`), plus a small penalty that keeps every normalised latent
channel near zero mean and unit variance (the DiT's noise is N(0, 1), and the latent
normalisation constants are fixed by the architecture), and decoding of a slightly noised
latent so the decoder tolerates the DiT's small errors.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from engine.train.common import (
    Budget, run_phase, batch_specs, batch_video, new_vae, preset, save_safetensors,
)

PHASE_ID = 1


OBJECT_WEIGHT = 8.0  # extra loss weight of object pixels (a clip's object covers ~2-6% of it)


def object_weight(video: torch.Tensor) -> torch.Tensor:
    """Per-pixel loss weight [B, 1, F, H, W]: 1 on the background, ``1 + OBJECT_WEIGHT`` where a
    pixel is far from its frame's median colour (the background: the object covers < half of
    any frame).  Unweighted, the L1/MSE of flat backgrounds dominates and the small VAE learns
    backgrounds long before objects, whose colour and motion are what prompts are about."""
    median = video.flatten(3).median(dim=3).values[..., None, None]  # [B, 3, F, 1, 1]
    far = (video - median).abs().sum(1, keepdim=True) > 0.3
    return 1.0 + OBJECT_WEIGHT * far.float()


def train_vae(out: Path, budget: Budget, *, batch: int = 12, size: int = 192, frames: int = 9,
              lr: float = 1e-3, latent_noise: float = 0.1, crop: int = 128, device: str = "cpu",
              model: str = "tiny", decoder_only: bool = False, bank: int = 48, check_clips: int = 48) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    vae = new_vae(preset(model)).to(dev)
    if decoder_only:  # keep an existing encoder (and so the DiT's latent space); refit the decoder
        from engine.checkpoint import read_state_dict
        vae.load_state_dict(read_state_dict(out / "vae.safetensors"))
        vae.encoder.requires_grad_(False)
        vae.conv1.requires_grad_(False)
    opt = torch.optim.AdamW([q for q in vae.parameters() if q.requires_grad], lr=lr, weight_decay=0.0,
                            betas=(0.9, 0.99))
    if decoder_only:
        with torch.no_grad():
            specs = batch_specs(PHASE_ID + 10, 0, bank, frames, size)
            bank_v = torch.cat([batch_video(specs[i:i + 8], size, dev) for i in range(0, bank, 8)])
            bank_z = torch.cat([vae.encode(bank_v[i:i + 8]) for i in range(0, bank, 8)])
    t_start = time.monotonic()

    def step_loss(step: int):
        frac = budget.fraction(step, time.monotonic() - t_start)
        if not decoder_only:
            video = batch_video(batch_specs(PHASE_ID, step, batch, frames, size), size, dev)
        if crop < size and not decoder_only:  # a random crop (multiple of 8): the VAE is convolutional, crops train faster
            g = torch.Generator().manual_seed(step)
            y, x = (8 * torch.randint((size - crop) // 8 + 1, (2,), generator=g)).tolist()
            video = video[..., y:y + crop, x:x + crop]
        if decoder_only:  # random latent crops of a bank of whole-frame encodings (cheaper)
            g = torch.Generator().manual_seed(step)
            c = crop // 8
            pick = torch.randint(len(bank_z), (batch,), generator=g).tolist()
            zs, vs = [], []
            for i in pick:
                y, x = torch.randint(bank_z.shape[-1] - c + 1, (2,), generator=g).tolist()
                zs.append(bank_z[i, :, :, y:y + c, x:x + c])
                vs.append(bank_v[i, :, :, 8 * y:8 * (y + c), 8 * x:8 * (x + c)])
            z, video = torch.stack(zs), torch.stack(vs)
        else:
            z = vae.encode(video)  # [B, 16, T, h, w], normalised
        # the latent noise ramps in over the first half: at the start the latent carries
        # little signal and a full-strength noise teaches the decoder to ignore it
        noise = latent_noise * min(1.0, 2 * frac) if not decoder_only else latent_noise
        rec = vae.decode(z + noise * torch.randn_like(z))
        loss_rec = ((rec - video).abs() + (rec - video).square()).mul(object_weight(video)).mean()
        zc = z.transpose(0, 1).flatten(1)  # [16, N]
        loss_reg = zc.mean(1).pow(2).mean() + (zc.std(1) - 1).pow(2).mean()
        loss = loss_rec + (0.0 if decoder_only else 0.05) * loss_reg
        return loss, {"loss": loss_rec.detach(), "reg": loss_reg.detach(), "zstd": zc.std(1).mean().detach()}

    run_phase("vae", out, budget, {"vae": vae}, opt, lr, 25, step_loss, log_every=25)
    path = save_safetensors(vae.state_dict(), out / "vae.safetensors")
    if check_clips:  # can the analyzer read the VAE's reconstructions? (the ceiling of every later row)
        from engine.train.common import Log
        from engine.train.evaluate import reconstruct, score_frames
        from engine.train.world import validation_specs

        specs = validation_specs(check_clips, frames, size)
        with torch.no_grad():
            result = score_frames(reconstruct(vae.eval(), specs, size, device=dev), specs)
        Log(out, "vae")(check="reconstruction", **{k: round(v, 4) for k, v in result.items()})
    return path
