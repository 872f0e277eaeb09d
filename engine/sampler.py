"""The rCM few-step sampler, separate from any model.

Equations from shared/reference/FORMATS.md section 8 (TurboDiffusion
``inference/wan2.1_t2v_infer.py`` / ``wan2.2_i2v_infer.py``):

* TrigFlow angles ``[atan(sigma_max), 1.5, 1.4, 1.0][:num_steps] + [0]`` (the middle values are
  fixed), mapped to rectified-flow time ``t = sin(a) / (sin(a) + cos(a))`` in float64;
* ``x = init_noise * t_0`` (float64); at each step the net sees ``x`` in the model dtype and
  ``t_cur * 1000`` (float32, then the model dtype) and predicts the velocity ``v``;
* SDE: ``x = (1 - t_next) * (x - t_cur * v) + t_next * noise_i`` with a fresh draw each step,
  the last one included (its weight is 0), the noise term formed in float32;
* ODE: ``x = x - (t_cur - t_next) * v``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

# Fixed middle TrigFlow angles of the rCM schedule (reference inference scripts).
MID_ANGLES = (1.5, 1.4, 1.0)


def trigflow_angles(num_steps: int, sigma_max: float) -> list[float]:
    if not 1 <= num_steps <= 4:
        raise ValueError(f"num_steps must be 1..4, got {num_steps}")
    return ([math.atan(sigma_max), *MID_ANGLES][:num_steps]) + [0.0]


def rcm_schedule(num_steps: int, sigma_max: float) -> list[float]:
    """Rectified-flow times t_0 > t_1 > ... > t_n = 0 (Python floats, i.e. float64)."""
    return [math.sin(a) / (math.sin(a) + math.cos(a)) for a in trigflow_angles(num_steps, sigma_max)]


def expert_for_steps(rf_t: Sequence[float], boundary: float) -> list[str]:
    """I2V: "high" until the first step whose t_cur < boundary, then "low" for the rest."""
    names, switched = [], False
    for t_cur in rf_t[:-1]:
        switched = switched or t_cur < boundary
        names.append("low" if switched else "high")
    return names


# A velocity model: (x in the model dtype, timesteps [B, 1] in the model dtype, step index) -> v
VelocityFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


@dataclass
class StepInfo:
    """Handed to ``on_step`` after each step."""

    index: int  # 0-based
    t_cur: float
    t_next: float
    x: torch.Tensor  # float64 state after the step
    x0: torch.Tensor  # float64 clean estimate at this step: x_t - t_cur * v


def sample_rcm(
    velocity: VelocityFn,
    init_noise: torch.Tensor,
    rf_t: Sequence[float],
    model_dtype: torch.dtype,
    *,
    ode: bool = False,
    next_noise: Callable[[], torch.Tensor] | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    before_step: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Run the rCM loop and return the final latent (float32).

    ``next_noise`` returns the next float32 draw of ``init_noise``'s shape (SDE only), so the
    caller owns the generator and the draw order.  ``before_step(i)`` may raise to cancel.
    """
    if not ode and next_noise is None:
        raise ValueError("the SDE update needs next_noise")
    x = init_noise.double() * rf_t[0]
    B = x.shape[0]
    for i in range(len(rf_t) - 1):
        if before_step is not None:
            before_step(i)
        t_cur, t_next = rf_t[i], rf_t[i + 1]
        # As the reference: t in float32, times 1000 in float32, then the model dtype
        # (so bf16 models see 988, 932, 852, 608 for sigma 80 / 4 steps).
        t32 = torch.full((B, 1), t_cur, dtype=torch.float32, device=x.device)
        timesteps = (t32 * 1000.0).to(model_dtype)
        v = velocity(x.to(model_dtype), timesteps, i).double()
        x0 = x - t_cur * v
        if ode:
            x = x - (t_cur - t_next) * v
        else:
            noise = next_noise().to(device=x.device, dtype=torch.float32)
            x = (1.0 - t_next) * x0 + (t_next * noise)  # noise term in float32, sum in float64
        if on_step is not None:
            on_step(StepInfo(i, t_cur, t_next, x, x0))
    return x.float()
