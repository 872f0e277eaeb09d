"""Phase 3: the few-step student for the rCM sampler (1-4 steps).

Method: *trajectory (consistency) distillation at the rCM times.*  The rCM schedule only ever
evaluates the net at four times (t = 0.9877, 0.9338, 0.8529, 0.6090 for sigma_max 80; every
1..3-step schedule is a prefix of these), and each step uses the net's clean estimate
``x0 = x_t - t v``.  So we (1) run the teacher's probability-flow ODE (Euler, 20 steps, with
the four times on its grid) from ``x = noise * t_0`` -- exactly the sampler's start -- and keep
the states at the four times plus the end point -- guided by classifier-free guidance at the scale the
teacher phase picked on validation clips (``guidance.json``), as Wan's few-step models distil a
guided teacher, so the student needs no guidance at sampling time; (2) train the student, initialised from the
teacher, so that its clean estimate at each kept state is the ODE's end point
(``|| x_t - t v_student - x0_teacher ||^2``).  That is the consistency function of the
teacher's ODE restricted to the times the sampler uses.  A state at time t on a trajectory is
distributed like ``(1 - t) x0 + t noise`` with fresh noise, which is what the SDE sampler feeds
the later steps, so the same targets serve the SDE updates.

Why not rCM itself (sCM's continuous-time consistency with JVPs plus a DMD score-distillation
term): it needs forward-mode JVPs through attention and a second "fake score" network, and is
known to need many thousands of steps to stabilise; with a one-minute budget a regression onto
precomputed teacher end points is stable, cheap (the teacher's 20 steps are paid once and
reused four times per trajectory) and directly optimises what the 1-4-step sampler consumes.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from engine import loading
from engine.errors import ConfigError
from engine.sampler import rcm_schedule
from engine.train.common import (
    Budget, run_phase, Log, load_weights_into, batch_specs, export_dit, new_dit, preset, text_context,
)
from engine.train.evaluate import Guided, check
from engine.train.teacher import read_guidance

PHASE_ID = 3
SIGMA_MAX = 80.0
SUBSTEPS = (3, 3, 4, 10)  # Euler steps between consecutive rCM times (then down to 0)


def knots() -> list[float]:
    return rcm_schedule(4, SIGMA_MAX)  # [t0, t1, t2, t3, 0]


def ode_grid() -> list[float]:
    ks, grid = knots(), []
    for a, b, n in zip(ks[:-1], ks[1:], SUBSTEPS):
        grid += [a + (b - a) * i / n for i in range(n)]
    return grid + [0.0]


@torch.no_grad()
def teacher_trajectories(teacher, ctx: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Euler PF-ODE from ``noise * t0``: (states at the 4 rCM times [4, B, ...], end point [B, ...])."""
    grid, ks = ode_grid(), knots()[:-1]
    x = noise * grid[0]
    kept = []
    for t_cur, t_next in zip(grid[:-1], grid[1:]):
        if any(abs(t_cur - k) < 1e-12 for k in ks):
            kept.append(x.clone())
        tt = torch.full((x.shape[0], 1), t_cur * 1000.0, device=x.device)
        x = x - (t_cur - t_next) * teacher(x, tt, ctx).float()
    return torch.stack(kept), x


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


class TrajectoryCache:
    """The teacher's trajectories on disk, valid only for what made them: the same teacher and text
    encoder files, guidance scale, autocast setting, clip shape and batching (anything else
    recomputes them from the start)."""

    def __init__(self, out: Path, **key):
        self.path = Path(out) / "trajectories.pt"
        self.key = key

    def load(self, device) -> dict | None:
        """{"states", "ends", "ctxs", "gen"} made so far, or None."""
        if not self.path.exists():
            return None
        try:
            d = torch.load(self.path, map_location=device, weights_only=True)
        except Exception:  # unreadable (a run killed mid-write leaves only the .tmp): start over
            return None
        if d.get("key") != self.key:
            return None
        d["gen"] = d["gen"].cpu()
        return d

    def save(self, states, ends, ctxs, gen_state) -> None:
        tmp = self.path.with_suffix(".tmp")
        torch.save({"key": self.key, "states": states, "ends": ends, "ctxs": ctxs, "gen": gen_state}, tmp)
        tmp.replace(self.path)


def student_inputs(states: torch.Tensor, ends: torch.Tensor, idx: torch.Tensor, k: torch.Tensor,
                   ts: torch.Tensor, gen: torch.Generator, renoise: float = 0.0) -> torch.Tensor:
    """The student's inputs for the draws (trajectory ``idx``, knot ``k``): the teacher's ODE state
    at that knot, or -- for a share ``renoise`` of the draws at knots 1-3 -- the trajectory's end
    point re-noised to the knot's time, ``(1 - t) x0 + t noise``: what the SDE sampler feeds the
    net after its first step (it re-noises its own clean estimate with fresh noise).  The targets
    stay the end points either way.  ``renoise`` 0 draws nothing more from ``gen``."""
    xt = states[k, idx]
    if renoise <= 0:
        return xt
    pick = (torch.rand(k.shape, generator=gen) < renoise).to(k.device) & (k > 0)
    noise = torch.randn(xt.shape, generator=gen).to(xt.device)
    t = ts[k].view(-1, 1, 1, 1, 1)
    return torch.where(pick.view(-1, 1, 1, 1, 1), (1 - t) * ends[idx] + t * noise, xt)


def regression_loss(net, states: torch.Tensor, ends: torch.Tensor, ctxs: torch.Tensor, ts: torch.Tensor,
                    gen: torch.Generator, batch: int, renoise: float = 0.0, amp: bool = False, **net_kw) -> torch.Tensor:
    """The student objective on one draw of ``batch`` (trajectory, knot) pairs from ``gen``: the
    net's clean estimate ``x_t - t v`` at :func:`student_inputs` against the trajectories' end
    points.  ``net_kw`` goes to the net (the SLA phase passes ``sla_topk``)."""
    dev = ends.device
    idx = torch.randint(ends.shape[0], (batch,), generator=gen).to(dev)
    k = torch.randint(4, (batch,), generator=gen).to(dev)
    xt = student_inputs(states, ends, idx, k, ts, gen, renoise)
    t = ts[k]
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
        v = net(xt, (t * 1000).view(-1, 1), ctxs[idx], **net_kw)
    x0 = xt - t.view(-1, 1, 1, 1, 1) * v.float()
    return F.mse_loss(x0, ends[idx])


def teacher_targets(out: Path, teacher, enc, p, dev, log, *, frames: int, size: int, trajectories: int,
                    traj_batch: int, traj_seconds: float, amp: bool):
    """The teacher's trajectories (states at the four rCM times [4, N, ...], end points [N, ...],
    text contexts [N, ...]), guided at the teacher phase's scale.  Paid once: they are kept in
    ``<out>/trajectories.pt``, so a resumed phase, or one cut short by ``traj_seconds``, continues
    where the last one stopped instead of recomputing; the SLA phase's ``target="teacher"`` reads
    the same cache."""
    guidance = read_guidance(out)  # the scale the teacher phase picked (1 = unguided)
    with torch.no_grad():
        guided = Guided(teacher, text_context(enc, [""], p.text.text_len), guidance)
    t_lat, hw = 1 + (frames - 1) // 4, size // 8
    t0 = time.monotonic()
    cache = TrajectoryCache(out, teacher=file_digest(out / "teacher.safetensors"),
                            text_encoder=file_digest(out / "text_encoder.safetensors"), guidance=float(guidance),
                            amp=bool(amp), frames=frames, size=size, traj_batch=traj_batch)
    prev = cache.load(dev)
    gen = torch.Generator().manual_seed(1234)
    states, ends, ctxs, i, made = [], [], [], 0, 0
    if prev is not None:
        gen.set_state(prev["gen"])
        states, ends, ctxs, i = [prev["states"]], [prev["ends"]], [prev["ctxs"]], prev["ends"].shape[0]
    with torch.no_grad():
        while i < trajectories and time.monotonic() - t0 < traj_seconds:
            n = min(traj_batch, trajectories - i)
            specs = batch_specs(PHASE_ID, i // traj_batch, n, frames, size)
            ctx = text_context(enc, [s.caption for s in specs], p.text.text_len)
            noise = torch.randn(n, p.vae.z_dim, t_lat, hw, hw, generator=gen).to(dev)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                kept, end = teacher_trajectories(guided, ctx, noise)
            states.append(kept)
            ends.append(end)
            ctxs.append(ctx)
            i += n
            made += n
    if not ends:
        raise ConfigError(f"no teacher trajectories in {out} and --traj-seconds {traj_seconds:g} made none: "
                          "give the phase time to make them")
    states, ends, ctxs = torch.cat(states, 1), torch.cat(ends), torch.cat(ctxs)
    if made:
        cache.save(states, ends, ctxs, gen.get_state())
    log(trajectories=ends.shape[0], new=made, seconds=time.monotonic() - t0, guidance=guidance)
    return states, ends, ctxs


def train_student(out: Path, budget: Budget, *, batch: int = 48, size: int = 192, frames: int = 9,
                  lr: float = 2e-4, trajectories: int = 2048, traj_batch: int = 256, traj_seconds: float = 30.0,
                  device: str = "cpu", model: str = "tiny", check_clips: int = 48, amp: bool = False,
                  renoise: float = 0.0, init: Path | None = None) -> Path:
    """``amp``: the teacher's trajectory forwards and the student's forward and backward under
    bfloat16 autocast (float32 weights, ODE states, optimizer and loss), for speed on GPUs.
    ``renoise``: the share of draws at knots 1-3 fed re-noised end points (:func:`student_inputs`);
    0 is the recipe of the shipped students.  It targets the weaker fourth step; its one GPU try
    (0.3, session 7) did not help (docs/tiny.md, "What it still misses").  ``init``: a DiT file
    (plain or SLA layout) to start the student from instead of the teacher -- an earlier student,
    continued with another recipe."""
    out = Path(out)
    dev = torch.device(device)
    p = preset(model)
    teacher = loading.load_dit(out / "teacher.safetensors", p.dit, attention="original", device=dev, dtype=torch.float32)
    enc = loading.load_text_encoder(out / "text_encoder.safetensors", p.text, device=dev, dtype=torch.float32)
    log = Log(out, "student")
    # 1. the teacher's trajectories
    states, ends, ctxs = teacher_targets(out, teacher, enc, p, dev, log, frames=frames, size=size,
                                         trajectories=trajectories, traj_batch=traj_batch,
                                         traj_seconds=traj_seconds, amp=amp)

    # 2. regression of the student's clean estimate onto the end points
    student = new_dit(p, "original").to(dev)
    if init is not None:
        load_weights_into(student, init, p)
    else:
        student.load_state_dict(teacher.state_dict())
    student.requires_grad_(True)
    del teacher
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.99))
    ts = torch.tensor(knots()[:-1], device=dev)

    def step_loss(step: int):
        gen = torch.Generator().manual_seed(99 + step)  # per step: a resumed run draws the same
        return regression_loss(student, states, ends, ctxs, ts, gen, batch, renoise, amp), {}

    run_phase("student", out, budget, {"dit": student}, opt, lr, 50, step_loss)
    path = export_dit(student, out / "student.safetensors")
    if check_clips:
        vae = loading.load_vae(out / "vae.safetensors", p.vae, device=dev, dtype=torch.float32)
        for n in (1, 3, 4):
            check(out, "student", f"rcm-{n}", student.eval(), vae, enc, size=size, frames=frames, clips=check_clips,
                  device=dev, steps=n)
    return path
