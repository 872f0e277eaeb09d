"""Shared pieces of the training phases: models at the tiny config, data batches, the
differentiable text path, resumable state, time budgets and export in the loaders' layouts."""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from engine.configs import ModelPreset, get_preset
from engine.models.int8_linear import Int8Linear
from engine.models.tokenizer import ByteTokenizer
from engine.models.umt5 import UMT5Encoder
from engine.models.wan_dit import WanDiT
from engine.models.wan_vae import AttentionBlock, ResidualBlock, WanVAE
from engine.train.world import ClipSpec, render, sample_spec

# The 10 block linears that -quant files hold as int8 (FORMATS.md section 2).
QUANT_LINEARS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                 "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2")
TRAIN_SEED_STRIDE = 10**7  # phase p draws clip seeds from [p * stride, (p + 1) * stride)


@dataclass(frozen=True)
class Budget:
    """Stop at ``steps`` or after ``seconds`` of training, whichever comes first."""

    steps: int
    seconds: float

    def fraction(self, step: int, elapsed: float) -> float:
        return min(1.0, max(step / max(self.steps, 1), elapsed / max(self.seconds, 1e-9)))


def lr_at(base: float, step: int, frac: float, warmup: int = 100) -> float:
    """Linear warm-up, then cosine decay to 10% over the budget fraction."""
    return base * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def run_phase(
    phase: str, out: Path, budget: Budget, models: dict[str, nn.Module], opt: torch.optim.Optimizer,
    lr: float, warmup: int, step_loss: Callable[[int], tuple[torch.Tensor, dict]], *,
    ema: float = 0.98, log_every: int = 50, save_every_s: float = 60.0,
) -> int:
    """The loop every phase shares; returns the final step.

    Resumes from ``<out>/<phase>.state.pt``; stops at the budget's steps or seconds; the learning
    rate warms up then decays (times a parameter group's ``"scale"``, if it has one); each step
    minimises ``step_loss(step)`` with gradients clipped to norm 1.  ``step_loss`` returns the loss
    and extra values for the log (tensors are read only when a line is logged); the log's ``loss``
    is an exponential average with weight ``ema`` unless the extras give their own.

    The Triton kernels are forward-only; they step aside by themselves wherever a tensor needs its
    gradient (``kernels.*.triton_usable``), so training needs no switch.
    """
    state, log = State(out, phase), Log(out, phase)
    resumed = state.path.is_file()
    step, elapsed = state.load(models, opt)
    if resumed:  # the state's weights replace the phase's start (--init included)
        log(resumed=str(state.path), step=step, t=elapsed)
    params = [q for g in opt.param_groups for q in g["params"]]
    t_start = time.monotonic() - elapsed
    avg = None
    while step < budget.steps and (time.monotonic() - t_start) < budget.seconds:
        frac = budget.fraction(step, time.monotonic() - t_start)
        for g in opt.param_groups:
            g["lr"] = lr_at(lr, step, frac, warmup=warmup) * g.get("scale", 1.0)
        loss, extra = step_loss(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        avg = loss.item() if avg is None else ema * avg + (1 - ema) * loss.item()
        if step % log_every == 0 or step == 1:
            values = {k: float(v) for k, v in extra.items()}
            log(**{"step": step, "t": time.monotonic() - t_start, "loss": avg, **values})
        if state.due(save_every_s):
            state.save(models, opt, step, time.monotonic() - t_start)
    state.save(models, opt, step, time.monotonic() - t_start)
    log(step=step, t=time.monotonic() - t_start, done=True)
    return step


# Training-only variants of ``tiny``: same VAE and text encoder, another DiT size.  A run
# trained with one of these is shipped only after the ``tiny`` preset takes its DiT config.
# ``tiny-w192d6`` is what ``tiny`` is since session 6; ``tiny-w128d4`` what it was before (the
# runs of sessions 2-4 in BENCHMARKS.md "Quality").
_TINY = get_preset("tiny")
TRAIN_PRESETS: dict[str, ModelPreset] = {
    "tiny-w128d4": replace(_TINY, name="tiny-w128d4",
                           dit=replace(_TINY.dit, dim=128, ffn_dim=256, num_heads=2, num_layers=4)),
    "tiny-w256": replace(_TINY, name="tiny-w256",
                         dit=replace(_TINY.dit, dim=256, ffn_dim=512, num_heads=4, num_layers=4)),
    "tiny-w192d6": replace(_TINY, name="tiny-w192d6",
                           dit=replace(_TINY.dit, dim=192, ffn_dim=576, num_heads=3, num_layers=6)),
}


def preset(name: str = "tiny") -> ModelPreset:
    return TRAIN_PRESETS[name] if name in TRAIN_PRESETS else get_preset(name)


# ---------------------------------------------------------------------------
# Models


def new_dit(p: ModelPreset, attention: str = "original", seed: int = 0) -> WanDiT:
    """A trainable float32 DiT: PyTorch default init, Wan-style modulations, zero output head."""
    torch.manual_seed(seed)
    model = WanDiT(p.dit, attention=attention, quant_linear=False, fast_norm=True)
    with torch.no_grad():
        for name, prm in model.named_parameters():
            if name.endswith("modulation"):
                prm.copy_(torch.randn_like(prm) / math.sqrt(p.dit.dim))
        model.head.head.weight.zero_()
        model.head.head.bias.zero_()
        for blk in model.blocks:
            proj = getattr(blk.self_attn.attn_op.local_attn, "proj_l", None)
            if proj is not None:  # the reference zero-initialises proj_l: SLA starts as its sparse branch
                proj.weight.zero_()
                proj.bias.zero_()
    return model


def new_vae(p: ModelPreset, seed: int = 0) -> WanVAE:
    """A trainable VAE with a signal-preserving init.

    PyTorch's default conv init (variance 1/(3 fan_in)) shrinks a signal ~0.58x per conv; the
    Wan VAE's shortcut path (conv1, shortcuts, resample and time convs, head, ``conv1``) has
    about ten of them, so at init the latent of a red clip and of a blue one differed by
    ~0.007 (normalised units) against a latent noise of 0.1 and the decoder learned the data
    mean (the H200 run's gray plateau).  Here every conv is N(0, 1/fan_in) with zero bias and
    the last conv of each residual branch (and the attention output) is scaled by 0.2, so the
    blocks start near their shortcut: the latent varies ~20x more with the input."""
    torch.manual_seed(seed)
    vae = WanVAE(p.vae)
    with torch.no_grad():
        for m in vae.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                m.weight.normal_(0.0, math.sqrt(1.0 / m.weight[0].numel()))
                m.bias.zero_()
        for m in vae.modules():
            if isinstance(m, ResidualBlock):
                m.residual[6].weight.mul_(0.2)
            elif isinstance(m, AttentionBlock):
                m.proj.weight.mul_(0.2)
    return vae


def new_text_encoder(p: ModelPreset, seed: int = 0) -> UMT5Encoder:
    torch.manual_seed(seed)
    enc = UMT5Encoder(p.text)
    with torch.no_grad():
        enc.token_embedding.weight.normal_(0, 1.0)
    return enc


_TOKENIZER = ByteTokenizer()


def text_context(encoder: UMT5Encoder, captions: list[str], text_len: int) -> torch.Tensor:
    """What the pipeline feeds the DiT (``engine.models.umt5.encode_text``), with autograd:
    encoder states, rows past the prompt zeroed.  [B, text_len, dim]"""
    device = encoder.token_embedding.weight.device
    # Encode only as far as the longest caption, then pad with zero rows: padding keys are
    # masked out of every attention, so the live rows equal a full-length encoding (the
    # relative-position bias depends on offsets only), at a fraction of the cost.
    longest = max(len(c.encode("utf-8")) for c in captions) + 1
    ids, mask = _TOKENIZER(captions, max_length=min(text_len, longest))
    ids, mask = ids.to(device), mask.to(device)
    out = encoder(ids, mask)
    keep = torch.arange(ids.shape[1], device=device)[None, :] < mask.sum(1)[:, None]
    out = out.masked_fill(~keep[..., None], 0.0)
    return torch.nn.functional.pad(out, (0, 0, 0, text_len - out.shape[1]))


# ---------------------------------------------------------------------------
# Data


def batch_specs(phase: int, step: int, batch: int, frames: int, size: int) -> list[ClipSpec]:
    """The clips of training step ``step`` of phase ``phase`` (fixed by the numbers: resumable)."""
    base = phase * TRAIN_SEED_STRIDE + (step * batch) % TRAIN_SEED_STRIDE
    return [sample_spec(base + i, frames, size, size) for i in range(batch)]


def batch_video(specs: list[ClipSpec], size: int, device) -> torch.Tensor:
    return render(specs, size, size, device=device)


# ---------------------------------------------------------------------------
# Resumable state


class State:
    """``<dir>/<phase>.state.pt``: models, optimizer, step and elapsed seconds of one phase."""

    def __init__(self, out: Path, phase: str):
        self.path = Path(out) / f"{phase}.state.pt"
        self.last_save = time.monotonic()

    def load(self, models: dict[str, nn.Module], opt: torch.optim.Optimizer | None) -> tuple[int, float]:
        if not self.path.exists():
            return 0, 0.0
        ck = torch.load(self.path, map_location="cpu", weights_only=True)
        for name, m in models.items():
            m.load_state_dict(ck["models"][name])
        if opt is not None and ck.get("opt"):
            opt.load_state_dict(ck["opt"])
        return int(ck["step"]), float(ck["elapsed"])

    def save(self, models: dict[str, nn.Module], opt, step: int, elapsed: float) -> None:
        tmp = self.path.with_suffix(".tmp")
        torch.save({"models": {n: m.state_dict() for n, m in models.items()},
                    "opt": opt.state_dict() if opt is not None else None,
                    "step": step, "elapsed": elapsed}, tmp)
        os.replace(tmp, self.path)
        self.last_save = time.monotonic()

    def due(self, every_s: float) -> bool:
        return time.monotonic() - self.last_save > every_s


class Log:
    """Prints and appends JSON lines to ``<dir>/train.log``."""

    def __init__(self, out: Path, phase: str):
        self.path = Path(out) / "train.log"
        self.phase = phase

    def __call__(self, **kw) -> None:
        kw = {"phase": self.phase, **{k: (round(v, 5) if isinstance(v, float) else v) for k, v in kw.items()}}
        line = json.dumps(kw)
        print(line, flush=True)
        with open(self.path, "a") as f:
            f.write(line + "\n")


# ---------------------------------------------------------------------------
# Export in the layouts engine.loading reads


def _contiguous_cpu(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in sd.items()}


def save_safetensors(sd: dict[str, torch.Tensor], path: str | os.PathLike) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(_contiguous_cpu(sd), str(tmp))
    os.replace(tmp, path)
    return path


def quantized_state_dict(model: WanDiT) -> dict[str, torch.Tensor]:
    """The ``-quant`` layout: each block linear replaced by ``Int8Linear.from_linear``."""
    q = copy.deepcopy(model).cpu().float()
    for blk in q.blocks:
        for name in QUANT_LINEARS:
            parent_name, leaf = name.rsplit(".", 1)
            parent = blk.get_submodule(parent_name)
            setattr(parent, leaf, Int8Linear.from_linear(getattr(parent, leaf)))
    return q.state_dict()


def load_weights_into(model: WanDiT, path: str | os.PathLike, p: ModelPreset,
                      attention: str = "original") -> WanDiT:
    """Start a training DiT from a DiT file (``--init``): its weights replace ``model``'s, on
    ``model``'s device.  ``attention`` is ``model``'s layout: ``"original"`` drops an SLA file's
    ``proj_l``; ``"sla"`` keeps it (a plain file gives zero ``proj_l``).  A ``-quant`` file has no
    float weights to train from and is refused in one line."""
    from engine import loading
    from engine.errors import ConfigError

    dev = next(model.parameters()).device
    sd = loading.load_dit(path, p.dit, attention=attention, device=dev, dtype=torch.float32).state_dict()
    missing = sorted(model.state_dict().keys() - sd.keys())
    if missing:
        raise ConfigError(f"{path}: no float weight {missing[0]!r} ({len(missing)} missing): --init needs an "
                          "unquantized DiT file, not a -quant one")
    model.load_state_dict(sd)
    return model


def export_dit(model: WanDiT, path: str | os.PathLike, quant: bool = False) -> Path:
    """float32 DiT file (plain) or its ``-quant`` twin, loadable by :func:`engine.loading.load_dit`."""
    sd = quantized_state_dict(model) if quant else model.state_dict()
    return save_safetensors(sd, path)
