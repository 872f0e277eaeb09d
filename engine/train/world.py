"""A deterministic synthetic video world: one shape moving over a coloured background.

Every clip is described by a :class:`ClipSpec` (object colour, shape, background colour,
motion, and the exact per-frame centre and size), drawn from ``random.Random(seed)``, so a
seed names a clip forever.  Captions come from templates with synonyms.  Rendering is pure
torch and batched (it runs on the training GPU), with one-pixel anti-aliased edges.

Held-out split: a fixed ~1/7 of the (object colour, background, motion) combinations never
appears in training (:func:`is_held_out`); the quality benchmark draws its prompts from them,
with seeds from a range training never uses (:data:`EVAL_SEED_BASE`).
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

import torch

# Named colours (RGB 0..255).  Objects and backgrounds share one palette, so the analyzer
# classifies a colour by the nearest name without knowing its role.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 215),
    "yellow": (235, 210, 40),
    "purple": (140, 60, 190),
    "white": (235, 235, 235),
    "black": (20, 20, 20),
    "gray": (125, 125, 125),
}
OBJECT_COLOURS = ("red", "green", "blue", "yellow", "purple", "white")
BACKGROUND_COLOURS = ("black", "gray", "blue", "green", "red")
SHAPES = ("circle", "square", "triangle")
MOTIONS = ("left", "right", "up", "down", "still", "growing")

COLOUR_WORDS = {"gray": ("gray", "grey"), "purple": ("purple", "violet")}
SHAPE_WORDS = {"circle": ("circle", "disc", "ball"), "square": ("square", "box", "block"), "triangle": ("triangle",)}
MOTION_WORDS = {
    "left": ("moving left", "sliding to the left", "going left", "heading left"),
    "right": ("moving right", "sliding to the right", "going right", "heading right"),
    "up": ("moving up", "rising", "going up", "floating upward"),
    "down": ("moving down", "falling", "going down", "dropping"),
    "still": ("standing still", "not moving", "staying put", "resting"),
    "growing": ("growing", "getting bigger", "expanding", "swelling"),
}
TEMPLATES = (
    "a {c} {s} {m} on a {b} background",
    "{c} {s} {m}, {b} background",
    "a {c} {s} {m} against a {b} backdrop",
    "on a {b} background, a {c} {s} {m}",
    "{b} background with a {c} {s} {m}",
)

EVAL_SEED_BASE = 10**9  # benchmark seeds start here; training seeds stay below
VALIDATION_SEED_BASE = 5 * 10**8  # training-time checks: trained combinations, seeds never trained on


@dataclass(frozen=True)
class ClipSpec:
    """Ground truth of one clip.  Coordinates in pixels, y pointing down."""

    colour: str
    shape: str
    background: str
    motion: str
    caption: str
    cx: tuple[float, ...]  # per-frame centre
    cy: tuple[float, ...]
    r: tuple[float, ...]  # per-frame size (circle radius; the other shapes have about its area)
    gradient: float  # background brightness ramp, top to bottom (fraction)

    @property
    def attributes(self) -> dict[str, str]:
        return {"colour": self.colour, "background": self.background, "motion": self.motion}


def is_held_out(colour: str, background: str, motion: str) -> bool:
    """True for the fixed ~1/7 of attribute combinations kept out of training."""
    h = hashlib.sha256(f"{colour}/{background}/{motion}".encode()).digest()
    return h[0] % 7 == 0


def combos(held_out: bool) -> list[tuple[str, str, str]]:
    return [(c, b, m) for c in OBJECT_COLOURS for b in BACKGROUND_COLOURS for m in MOTIONS
            if c != b and is_held_out(c, b, m) == held_out]


def caption(colour: str, shape: str, background: str, motion: str, rng: random.Random) -> str:
    word = lambda name, table: rng.choice(table.get(name, (name,)))  # noqa: E731
    return rng.choice(TEMPLATES).format(
        c=word(colour, COLOUR_WORDS), s=word(shape, SHAPE_WORDS), b=word(background, COLOUR_WORDS),
        m=rng.choice(MOTION_WORDS[motion]),
    )


def sample_spec(seed: int, num_frames: int = 9, height: int = 192, width: int = 192,
                held_out: bool = False, attributes: tuple[str, str, str] | None = None) -> ClipSpec:
    """The clip named by ``seed``: attributes from the training (or held-out) combinations,
    then caption, size, path.  ``attributes`` = (colour, background, motion) forces them."""
    rng = random.Random(f"clip:{seed}")
    colour, background, motion = attributes or rng.choice(combos(held_out))
    shape = rng.choice(SHAPES)
    text = caption(colour, shape, background, motion, rng)
    s = min(height, width)
    n = num_frames - 1
    if motion == "growing":
        r0 = s * rng.uniform(0.08, 0.10)
        r = [r0 * (1 + 0.07 * f * 8 / max(n, 1)) for f in range(num_frames)]  # x1.56 over the clip
    else:
        r = [s * rng.uniform(0.11, 0.15)] * num_frames
    speed = s * rng.uniform(0.030, 0.042) * 8 / max(n, 1)  # px per frame: 0.24..0.34 s over the clip
    dx, dy = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}.get(motion, (0, 0))
    reach = 1.25 * max(r) + 4  # the triangle's corners reach 1.2 r; keep 4 px from the border
    path = speed * n

    def start(axis_len: int, d: int) -> float:
        lo, hi = reach, axis_len - reach
        if d > 0:
            hi -= path
        elif d < 0:
            lo += path
        return rng.uniform(lo, hi)

    x0, y0 = start(width, dx), start(height, dy)
    cx = tuple(x0 + dx * speed * f for f in range(num_frames))
    cy = tuple(y0 + dy * speed * f for f in range(num_frames))
    return ClipSpec(colour, shape, background, motion, text, cx, cy, tuple(r), rng.uniform(-0.15, 0.15))


def eval_specs(n: int, num_frames: int = 9, height: int = 192, width: int = 192) -> list[ClipSpec]:
    """The benchmark set: ``n`` clips of held-out combinations, cycling through all of them."""
    held = combos(held_out=True)
    return [sample_spec(EVAL_SEED_BASE + i, num_frames, height, width, attributes=held[i % len(held)])
            for i in range(n)]


def validation_specs(n: int, num_frames: int = 9, size: int = 192) -> list[ClipSpec]:
    """Clips for the training phases' own checks (choosing the guidance scale, say): trained
    attribute combinations with unseen seeds, so the benchmark's held-out set stays unseen."""
    return [sample_spec(VALIDATION_SEED_BASE + i, num_frames, size, size) for i in range(n)]


# ---------------------------------------------------------------------------
# Rendering


def _sdf(shape_id: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Signed distance (pixels, negative inside) of circle / square / triangle, about equal areas."""
    d_circle = torch.sqrt(dx * dx + dy * dy) - r
    d_square = torch.maximum(dx.abs(), dy.abs()) - 0.886 * r  # same area as the circle
    # equilateral triangle pointing up, inradius 0.6 r (corners at 1.2 r): three half-planes
    c30 = math.sqrt(3) / 2
    d_tri = torch.maximum(torch.maximum(dy, -c30 * dx - 0.5 * dy), c30 * dx - 0.5 * dy) - 0.6 * r
    return torch.where(shape_id == 0, d_circle, torch.where(shape_id == 1, d_square, d_tri))


def render(specs: list[ClipSpec], height: int = 192, width: int = 192,
           device: torch.device | str = "cpu") -> torch.Tensor:
    """Clips as a float32 video batch [B, 3, F, H, W] in [-1, 1] (the VAE's input range)."""
    def col(values) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=device)

    B, n = len(specs), len(specs[0].cx)
    cx = col([s.cx for s in specs])[:, :, None, None]  # [B, F, 1, 1]
    cy = col([s.cy for s in specs])[:, :, None, None]
    r = col([s.r for s in specs])[:, :, None, None]
    shape_id = col([SHAPES.index(s.shape) for s in specs])[:, None, None, None]
    ys = torch.arange(height, device=device, dtype=torch.float32)[None, None, :, None] + 0.5
    xs = torch.arange(width, device=device, dtype=torch.float32)[None, None, None, :] + 0.5
    alpha = (0.5 - _sdf(shape_id, xs - cx, ys - cy, r)).clamp(0, 1)  # [B, F, H, W]
    obj = col([PALETTE[s.colour] for s in specs])[:, :, None, None, None] / 255.0  # [B, 3, 1, 1, 1]
    bg = col([PALETTE[s.background] for s in specs])[:, :, None, None, None] / 255.0
    ramp = 1 + col([s.gradient for s in specs])[:, None, None, None, None] * (ys[None] / height - 0.5)
    bg = (bg * ramp).clamp(0, 1)  # [B, 3, 1, H, 1]
    a = alpha[:, None]  # [B, 1, F, H, W]
    video = bg * (1 - a) + obj * a
    assert video.shape == (B, 3, n, height, width)
    return video * 2 - 1
