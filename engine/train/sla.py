"""Phase 4: SLA fine-tune, aligning the sparse-linear-attention student with the dense one.

The SLA model starts from the dense student with ``proj_l`` zeroed (as the reference does, so
it starts as the sparse branch alone).  Inputs are mostly (``sampler_share``) the states the
dense student's own 4-step rCM sampler visits -- what the SLA model is fed at generation time --
and otherwise noised data latents at the rCM times (and uniform times); the loss is the MSE
between the SLA model's velocity and the frozen dense student's.  (The session-2 run trained on
noised data alone, the rest at 0.03x, 65 s: top-k 0.1 recovered 52% against the dense 80.6%;
this recipe, 920 s: 72.7% against 86.1%.)  ``proj_l`` learns at ``lr``; everything else at
``lr * rest_lr_scale`` (0 trains ``proj_l`` only).  ``topk`` is drawn per step from the
benchmark's values, so one model serves them all.  The result is written as a delta-merge
(engine.train.merge) onto the student: ``student + (tuned - pretrained)``, the reference's merge
semantics.

``target="teacher"`` (session 7) trains the SLA model as a student instead: its clean estimate at
the teacher's ODE states (and, for a share ``renoise``, re-noised end points) regresses onto the
teacher's end points -- the student phase's objective and cached trajectories
(engine.train.student), with the SLA attention at a drawn top-k.  It asks the SLA model for what
the sampler consumes (the clean estimate at the four rCM times), not to copy the dense
velocity everywhere, which two key blocks of 27 cannot.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
import torch.nn.functional as F

from engine import loading
from engine.train.common import (
    Budget, Log, run_phase, batch_specs, export_dit, load_weights_into, new_dit, preset, text_context,
)
from engine.sampler import sample_rcm
from engine.train.merge import merge_state_dicts
from engine.train.student import knots, regression_loss, teacher_targets
from engine.train.teacher import encode_batch

PHASE_ID = 4
TOPKS = (0.05, 0.1, 0.1, 0.15, 0.3)


@torch.no_grad()
def sampler_states(dense, ctx: torch.Tensor, shape, ks: list[float], gen: torch.Generator, dev):
    """One state per sample from the dense net's 4-step rCM sampler (engine.sampler.sample_rcm,
    the SDE updates with fresh noise), each sample at a random one of the four times ``ks``; the
    sampler runs only as far as the latest time picked.  Returns (states, their times)."""
    n = shape[0]
    pick = torch.randint(len(ks), (n,), generator=gen).to(dev)
    init = torch.randn(shape, generator=gen).to(dev)
    path = [init * ks[0]]  # the state the net sees at ks[0], then after each update
    last = int(pick.max())
    if last:
        sample_rcm(lambda x, ts, i: dense(x, ts, ctx), init, ks[:last + 1], torch.float32,
                   next_noise=lambda: torch.randn(shape, generator=gen), on_step=lambda info: path.append(info.x.float()))
    return torch.stack(path)[pick, torch.arange(n, device=dev)], torch.tensor(ks, device=dev)[pick]


def train_sla(out: Path, budget: Budget, *, batch: int = 32, size: int = 192, frames: int = 9,
              lr: float = 1e-3, rest_lr_scale: float = 0.1, device: str = "cpu", model: str = "tiny",
              check_clips: int = 48, sampler_share: float = 0.7, target: str = "dense", amp: bool = False,
              renoise: float = 0.0, trajectories: int = 2048, traj_batch: int = 256,
              traj_seconds: float = 30.0, init: Path | None = None) -> Path:
    """``target``: ``"dense"`` (match the dense student's velocity) or ``"teacher"`` (the student
    phase's objective on the teacher's trajectories; ``renoise``, ``trajectories``, ``traj_*`` as
    there).  ``amp``: bfloat16 autocast for every forward (float32 weights and optimizer).
    ``init``: an SLA-layout DiT file to start from (an earlier fine-tune, e.g. a merged
    ``dit.safetensors``) instead of the student with zero ``proj_l``; the merge's ``pretrained``
    stays the student, so the written ``dit.safetensors`` is the tuned model itself."""
    if target not in ("dense", "teacher"):
        raise ValueError(f"sla target: dense or teacher, got {target!r}")
    out = Path(out)
    dev = torch.device(device)
    p = preset(model)
    vae = loading.load_vae(out / "vae.safetensors", p.vae, device=dev, dtype=torch.float32)
    enc = loading.load_text_encoder(out / "text_encoder.safetensors", p.text, device=dev, dtype=torch.float32)
    dense = loading.load_dit(out / "student.safetensors", p.dit, attention="original", device=dev, dtype=torch.float32)
    pretrained = {k: v.clone() for k, v in dense.state_dict().items()}
    sla = new_dit(p, "sla").to(dev)  # proj_l zero
    if init is not None:
        load_weights_into(sla, init, p, attention="sla")
    else:
        missing, unexpected = sla.load_state_dict(pretrained, strict=False)
        assert not unexpected and all(".proj_l." in k for k in missing), (missing, unexpected)
    sla.requires_grad_(True)
    proj = [prm for n, prm in sla.named_parameters() if ".proj_l." in n]
    rest = [prm for n, prm in sla.named_parameters() if ".proj_l." not in n]
    groups = [{"params": proj, "scale": 1.0}]
    if rest_lr_scale > 0:
        groups.append({"params": rest, "scale": rest_lr_scale})
    else:
        for prm in rest:
            prm.requires_grad_(False)
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=0.0, betas=(0.9, 0.99))
    ks = knots()[:-1]
    if target == "teacher":
        teacher = loading.load_dit(out / "teacher.safetensors", p.dit, attention="original", device=dev,
                                   dtype=torch.float32)
        states, ends, ctxs = teacher_targets(out, teacher, enc, p, dev, Log(out, "sla"), frames=frames, size=size,
                                             trajectories=trajectories, traj_batch=traj_batch,
                                             traj_seconds=traj_seconds, amp=amp)
        del teacher
        ts_k = torch.tensor(ks, device=dev)

    def teacher_loss(step: int):
        topk = random.Random(7 + step).choice(TOPKS)
        gen = torch.Generator().manual_seed(99 + step)
        return regression_loss(sla, states, ends, ctxs, ts_k, gen, batch, renoise, amp, sla_topk=topk), {"topk": topk}

    def step_loss(step: int):
        rng = random.Random(7 + step)  # per step: a resumed run draws the same
        gen = torch.Generator().manual_seed(7 + step)
        specs = batch_specs(PHASE_ID, step, batch, frames, size)
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            x0 = encode_batch(vae, specs, size, dev).float()
            ctx = text_context(enc, [s.caption for s in specs], p.text.text_len)
            if rng.random() < sampler_share:
                xt, t = sampler_states(dense, ctx, x0.shape, ks, gen, dev)
            else:
                t = torch.tensor([rng.choice(ks) if rng.random() < 0.8 else rng.random() for _ in specs], device=dev)
                tb = t.view(-1, 1, 1, 1, 1)
                xt = (1 - tb) * x0 + tb * torch.randn(x0.shape, generator=gen).to(dev)
            ts = (t * 1000).view(-1, 1)
            want = dense(xt, ts, ctx).float()
        topk = rng.choice(TOPKS)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            v = sla(xt, ts, ctx, sla_topk=topk)
        return F.mse_loss(v.float(), want), {"topk": topk}

    run_phase("sla", out, budget, {"dit": sla}, opt, lr, 20, teacher_loss if target == "teacher" else step_loss,
              ema=0.95, log_every=25)
    tuned = sla.state_dict()
    merged = merge_state_dicts(base=pretrained, tuned=tuned, pretrained=pretrained)
    sla.load_state_dict(merged)
    path = export_dit(sla, out / "dit.safetensors")
    export_dit(sla, out / "dit-quant.safetensors", quant=True)
    # before the fine-tune, for the benchmark: the dense student with zero proj_l
    zero = new_dit(p, "sla")
    zero.load_state_dict({k: v.cpu() for k, v in pretrained.items()}, strict=False)
    export_dit(zero, out / "student-sla0.safetensors")
    export_dit(zero, out / "student-sla0-quant.safetensors", quant=True)
    if check_clips:
        from engine.train.evaluate import check

        sla.eval()
        for topk in (0.1, 0.3):
            check(out, "sla", f"rcm-4-sla-{topk}", sla, vae, enc, size=size, frames=frames, clips=check_clips,
                  device=dev, steps=4, topk=topk)
    return path
