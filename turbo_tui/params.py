"""Pure helpers about per-turn parameters, shared by the Textual app and the REPL.

Labels, ranges, slider scales and one-line summaries of a :class:`TurnRequest`.
Nothing here imports Textual or torch; validation itself stays in
:func:`engine.api.validate_field` so that both UIs give the same messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.api import TurnRequest

# Field -> short label shown beside the control.
LABELS: dict[str, str] = {
    "prompt": "Prompt",
    "image_path": "Image (I2V)",
    "seed": "Seed",
    "num_steps": "Steps",
    "sla_topk": "SLA top-k",
    "sigma_max": "σ max",
    "num_frames": "Frames",
    "num_samples": "Samples",
    "resolution": "Resolution",
    "aspect_ratio": "Aspect",
    "adaptive_resolution": "Adaptive size",
    "ode": "ODE",
    "boundary": "Boundary",
}


@dataclass(frozen=True)
class SliderSpec:
    """How a numeric field maps onto a slider track.

    ``log`` spaces the track logarithmically (for sigma_max); ``step`` is the key
    increment on a linear track, ``log_steps`` the number of key presses from end
    to end on a log track.  ``marks`` are values drawn on the track and
    ``recommended`` a (low, high) range drawn in another colour.
    """

    minimum: float
    maximum: float
    step: float = 1.0
    integer: bool = False
    log: bool = False
    log_steps: int = 48
    page: float = 0.1  # fraction of the track a page key moves
    marks: tuple[float, ...] = ()
    recommended: tuple[float, float] | None = None

    def clamp(self, value: float) -> float:
        return min(self.maximum, max(self.minimum, value))

    def to_fraction(self, value: float) -> float:
        """Position of ``value`` on the track, 0 at the left end and 1 at the right."""
        v = self.clamp(value)
        if self.log:
            return math.log(v / self.minimum) / math.log(self.maximum / self.minimum)
        return (v - self.minimum) / (self.maximum - self.minimum)

    def from_fraction(self, fraction: float) -> float:
        """The value at a track position, snapped to the slider's resolution."""
        f = min(1.0, max(0.0, fraction))
        if self.log:
            return self.snap(self.minimum * (self.maximum / self.minimum) ** f)
        return self.snap(self.minimum + f * (self.maximum - self.minimum))

    def snap(self, value: float) -> float:
        """Round a track value to what the slider shows (3 significant digits on a log track)."""
        v = self.clamp(value)
        if self.integer:
            return float(round(v))
        if self.log:
            digits = 2 - int(math.floor(math.log10(v)))
            return self.clamp(round(v, max(0, digits)))
        n = round((v - self.minimum) / self.step)
        return self.clamp(round(self.minimum + n * self.step, 6))

    def nudge(self, value: float, clicks: int) -> float:
        """``value`` moved by ``clicks`` key steps (negative: left)."""
        if self.log:
            f = self.to_fraction(value) + clicks / self.log_steps
            return self.from_fraction(f)
        return self.snap(self.clamp(value) + clicks * self.step)

    def page_nudge(self, value: float, pages: int) -> float:
        return self.from_fraction(self.to_fraction(value) + pages * self.page)


SLIDERS: dict[str, SliderSpec] = {
    "num_steps": SliderSpec(1, 4, step=1, integer=True, page=1 / 3),
    "sla_topk": SliderSpec(0.02, 1.0, step=0.01, marks=(0.1, 0.15), recommended=(0.1, 0.15)),
    "sigma_max": SliderSpec(1.0, 1600.0, log=True, marks=(80.0, 200.0)),
}


def format_value(name: str, value: Any) -> str:
    """A field's value as the user would type it back."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        text = f"{value:.6g}"
        return text
    return str(value)


def format_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s"


def format_bytes(n: int | None) -> str:
    if not n:
        return "–"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB") else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def summarize(request: TurnRequest) -> str:
    """One line with the parameters a person iterates on (for history rows and the REPL)."""
    parts = [
        f"seed {request.seed}",
        f"{request.num_steps} step{'s' if request.num_steps != 1 else ''}",
        f"top-k {request.sla_topk:g}",
        f"σ {request.effective_sigma_max:g}",
        f"{request.num_frames}f",
        f"{request.resolution} {request.aspect_ratio}",
    ]
    if request.num_samples != 1:
        parts.append(f"×{request.num_samples}")
    if request.ode:
        parts.append("ODE")
    if request.image_path:
        parts.append("I2V")
    return " · ".join(parts)


def changed_fields(old: TurnRequest, new: TurnRequest) -> dict[str, tuple[Any, Any]]:
    """Fields that differ between two requests: name -> (old, new)."""
    return {
        name: (getattr(old, name), getattr(new, name))
        for name in TurnRequest.FIELDS
        if getattr(old, name) != getattr(new, name)
    }
