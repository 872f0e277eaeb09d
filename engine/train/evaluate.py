"""Generation and scoring shared by the training phases' checks and ``bench/quality.py``.

Clips are generated exactly as a pipeline turn would make them (same noise draws per seed,
:func:`engine.pipeline.denoise`, VAE decode, uint8 frames), then scored by the deterministic
analyzer against the held-out clips' ground truth.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.tokenizer import ByteTokenizer
from engine.models.umt5 import encode_text
from engine.pipeline import denoise
from engine.sampler import rcm_schedule
from engine.train.analyze import analyze, score
from engine.train.world import ClipSpec, eval_specs, render
from engine.video import to_uint8_frames

SIGMA_MAX = 80.0  # the pipeline's default sigma_max (rCM)
TEACHER_SHIFT = 3.0


class Guided(nn.Module):
    """Classifier-free guidance around a DiT: ``v_u + scale * (v_c - v_u)``, with ``uncond`` the
    empty caption's context.  Scale 1 is the plain conditional net."""

    def __init__(self, dit: nn.Module, uncond: torch.Tensor, scale: float):
        super().__init__()
        self.dit, self.uncond, self.scale = dit, uncond, scale

    def forward(self, x, t, context, **kw):
        if self.scale == 1.0:
            return self.dit(x, t, context, **kw)
        uncond = self.uncond.to(context).expand(x.shape[0], -1, -1)
        v = self.dit(torch.cat([x, x]), torch.cat([t, t]), torch.cat([context, uncond]), **kw)
        v_c, v_u = v.chunk(2)
        return v_u + self.scale * (v_c - v_u)


def teacher_grid(n: int, shift: float = TEACHER_SHIFT) -> list[float]:
    """Euler times for the teacher: shifted-uniform, starting at the rCM start time."""
    t0 = rcm_schedule(1, SIGMA_MAX)[0]
    ts = [shift * u / (1 + (shift - 1) * u) for u in (1 - i / n for i in range(n + 1))]
    return [t0] + ts[1:]


def contexts_for(encoder, captions: list[str], text_len: int) -> torch.Tensor:
    """The pipeline's text path (full ``text_len``, zero rows past each prompt)."""
    ids, mask = ByteTokenizer()(captions, max_length=text_len)
    return encode_text(encoder, ids, mask)


@torch.no_grad()
def generate(dit, vae, contexts: torch.Tensor, specs: list[ClipSpec], seeds: list[int], *, size: int, steps: int,
             teacher_steps: int = 24, topk: float = 0.1, dtype=torch.float32, device="cpu", batch: int = 8,
             guidance: float = 1.0, uncond: torch.Tensor | None = None) -> list:
    """uint8 frames of each clip, as a pipeline turn with seed = the clip's seed would make them.
    ``steps`` = rCM steps; 0 = the teacher's Euler ODE over ``teacher_steps`` (with ``guidance``)."""
    out = []
    z, t_lat = vae.z_dim, 1 + (len(specs[0].cx) - 1) // 4
    h = w = size // 8
    shape = (1, z, t_lat, h, w)
    rf_t = teacher_grid(teacher_steps) if steps == 0 else rcm_schedule(steps, SIGMA_MAX)
    net = Guided(dit, uncond, guidance) if (steps == 0 and guidance != 1.0) else dit
    for i in range(0, len(specs), batch):
        gens = [torch.Generator(device="cpu").manual_seed(s) for s in seeds[i:i + batch]]
        init = torch.cat([torch.randn(shape, generator=g) for g in gens]).to(device)
        nxt = lambda: torch.cat([torch.randn(shape, generator=g) for g in gens]).to(device)  # noqa: E731
        latent = denoise({"main": net}, contexts[i:i + batch].to(device, dtype), None, init, rf_t, dtype,
                         ode=steps == 0, sla_topk=topk, next_noise=nxt)
        video = vae.decode(latent.to(dtype))
        out += [to_uint8_frames(v.float().cpu().numpy()) for v in video]
    return out


@torch.no_grad()
def reconstruct(vae, specs: list[ClipSpec], size: int, device="cpu", batch: int = 16) -> list:
    """uint8 frames of the VAE's reconstruction of each (square) clip: encode, decode."""
    out = []
    for i in range(0, len(specs), batch):
        video = render(specs[i:i + batch], size, size, device=device)
        rec = vae.decode(vae.encode(video))
        out += [to_uint8_frames(v.float().cpu().numpy()) for v in rec]
    return out


def score_frames(frames: list, specs: list[ClipSpec]) -> dict[str, float]:
    return score([analyze(f) for f in frames], [s.attributes for s in specs])


def held_out(n: int, size: int, frames: int) -> tuple[list[ClipSpec], list[int]]:
    """The benchmark's clips and the seed each is generated with."""
    specs = eval_specs(n, frames, size, size)
    return specs, [1000 + i for i in range(n)]


def check(out, phase: str, name: str, dit, vae, encoder, *, size: int, frames: int, clips: int, device,
          steps: int = 4, topk: float = 0.1, guidance: float = 1.0) -> dict[str, float]:
    """A phase's closing check on validation clips (trained combinations, unseen seeds), logged
    to ``<out>/train.log``: the numbers to look at before spending more GPU time downstream."""
    from engine.train.common import Log
    from engine.train.world import validation_specs

    specs = validation_specs(clips, frames, size)
    seeds = [7000 + i for i in range(clips)]
    text_len = encoder.cfg.text_len
    ctx = contexts_for(encoder, [s.caption for s in specs], text_len)
    uncond = contexts_for(encoder, [""], text_len) if guidance != 1.0 else None
    frames_ = generate(dit, vae, ctx, specs, seeds, size=size, steps=steps, topk=topk, guidance=guidance,
                       uncond=uncond, device=device, batch=min(clips, 48))
    result = score_frames(frames_, specs)
    Log(out, phase)(check=name, **{k: round(v, 4) for k, v in result.items()})
    return result
