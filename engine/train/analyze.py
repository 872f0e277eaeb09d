"""A deterministic analyzer of synthetic-world videos: what colour, on what, moving how.

Reads uint8 frames [F, H, W, 3] (what the pipeline writes) and recovers the attributes of
:class:`engine.train.world.ClipSpec`: object colour, background colour and motion, plus a
temporal-consistency score.  No learning: borders give the background, the pixels far from
it give the object, a straight-line fit of its centroid and log-area over time gives the motion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.train.world import PALETTE

_NAMES = tuple(PALETTE)
_RGB = np.array([PALETTE[n] for n in _NAMES], dtype=np.float32)  # [N, 3]
BORDER = 3  # px of each side read as background
OBJECT_DIFF = 90.0  # summed |RGB - background| above which a pixel is object
GROW_RATIO = 1.35  # area growth over the clip above which the motion is "growing"
STILL_FRACTION = 0.08  # displacement below this fraction of the short side is "still"


def nearest_colour(rgb: np.ndarray) -> str:
    return _NAMES[int(np.argmin(((_RGB - np.asarray(rgb, np.float32)) ** 2).sum(1)))]


@dataclass
class Analysis:
    colour: str
    background: str
    motion: str
    consistency: float  # 0..1: mean IoU of consecutive object masks after motion compensation
    centroids: list[tuple[float, float]] = field(default_factory=list)
    areas: list[float] = field(default_factory=list)

    @property
    def attributes(self) -> dict[str, str]:
        return {"colour": self.colour, "background": self.background, "motion": self.motion}


def _background_rows(frames: np.ndarray) -> np.ndarray:
    """Per frame and row, the background colour: median of the left and right borders. [F, H, 3]"""
    sides = np.concatenate([frames[:, :, :BORDER], frames[:, :, -BORDER:]], axis=2)  # [F, H, 2B, 3]
    return np.median(sides, axis=2)


def _iou_shifted(a: np.ndarray, b: np.ndarray, shift: tuple[int, int]) -> float:
    """IoU of mask ``a`` moved by (dy, dx) with mask ``b`` (pixels moved out are dropped)."""
    dy, dx = shift
    moved = np.zeros_like(a)
    H, W = a.shape
    ys, yd = (slice(0, H - dy), slice(dy, H)) if dy >= 0 else (slice(-dy, H), slice(0, H + dy))
    xs, xd = (slice(0, W - dx), slice(dx, W)) if dx >= 0 else (slice(-dx, W), slice(0, W + dx))
    moved[yd, xd] = a[ys, xs]
    union = np.logical_or(moved, b).sum()
    return float(np.logical_and(moved, b).sum() / union) if union else 0.0


def analyze(frames: np.ndarray) -> Analysis:
    """frames: uint8 [F, H, W, 3] -> :class:`Analysis`."""
    f32 = frames.astype(np.float32)
    F_, H, W, _ = f32.shape
    # 1. background: the border pixels of every frame
    border = np.concatenate([f32[:, :BORDER].reshape(-1, 3), f32[:, -BORDER:].reshape(-1, 3),
                             f32[:, :, :BORDER].reshape(-1, 3), f32[:, :, -BORDER:].reshape(-1, 3)])
    background = nearest_colour(np.median(border, axis=0))

    # 2. object: pixels far from their row's background  [F, H, W]
    diff = np.abs(f32 - _background_rows(f32)[:, :, None, :]).sum(-1)
    mask = diff > OBJECT_DIFF
    if mask.sum() == 0:
        return Analysis("none", background, "none", 0.0)
    core = diff >= np.median(diff[mask])  # the clearly-object half, away from blurred edges
    colour = nearest_colour(np.median(f32[core], axis=0))

    # 3. motion: straight-line fits of the centroid and of log(area) over the frames
    yy, xx = np.mgrid[0:H, 0:W]
    cents, areas, frames_ok = [], [], []
    for f in range(F_):
        a = mask[f].sum()
        areas.append(float(a))
        if a > 0:
            cents.append((float((xx * mask[f]).sum() / a), float((yy * mask[f]).sum() / a)))
            frames_ok.append(f)
        else:
            cents.append((float("nan"), float("nan")))
    if len(frames_ok) < max(2, F_ // 2):
        motion = "none"
    else:
        t = np.array(frames_ok, dtype=np.float64)
        c = np.array([cents[f] for f in frames_ok])
        sx = np.polyfit(t, c[:, 0], 1)[0] * (F_ - 1)  # displacement over the clip, px
        sy = np.polyfit(t, c[:, 1], 1)[0] * (F_ - 1)
        growth = np.exp(np.polyfit(t, np.log([areas[f] for f in frames_ok]), 1)[0] * (F_ - 1))
        if growth > GROW_RATIO:
            motion = "growing"
        elif max(abs(sx), abs(sy)) < STILL_FRACTION * min(H, W):
            motion = "still"
        elif abs(sx) >= abs(sy):
            motion = "right" if sx > 0 else "left"
        else:
            motion = "down" if sy > 0 else "up"

    # 4. temporal consistency: consecutive masks overlap once the centroid shift is undone
    ious = []
    for f in range(F_ - 1):
        if mask[f].any() and mask[f + 1].any():
            (x0, y0), (x1, y1) = cents[f], cents[f + 1]
            ious.append(_iou_shifted(mask[f], mask[f + 1], (round(y1 - y0), round(x1 - x0))))
        else:
            ious.append(0.0)
    return Analysis(colour, background, motion, float(np.mean(ious)) if ious else 0.0, cents, areas)


def score(analyses: list[Analysis], truths: list[dict[str, str]]) -> dict[str, float]:
    """Accuracy per attribute, their mean ("attr"), all-three-right ("all"), and mean consistency."""
    keys = ("colour", "background", "motion")
    out = {k: float(np.mean([a.attributes[k] == t[k] for a, t in zip(analyses, truths)])) for k in keys}
    out["attr"] = float(np.mean([out[k] for k in keys]))
    out["all"] = float(np.mean([all(a.attributes[k] == t[k] for k in keys) for a, t in zip(analyses, truths)]))
    out["consistency"] = float(np.mean([a.consistency for a in analyses]))
    return out


def confusion(analyses: list[Analysis], truths: list[dict[str, str]], key: str = "motion") -> dict[str, dict[str, int]]:
    """{true value: {analyzed value: count}} for one attribute: where a model's errors go
    (a direction taken for its opposite, a moving object read as "growing", no object at all)."""
    table: dict[str, dict[str, int]] = {}
    for a, t in zip(analyses, truths):
        row = table.setdefault(t[key], {})
        got = a.attributes[key]
        row[got] = row.get(got, 0) + 1
    return table


def confusion_markdown(table: dict[str, dict[str, int]], labels: tuple[str, ...]) -> list[str]:
    """A markdown table of :func:`confusion`: rows = truth, columns = ``labels`` then any other
    value seen (such as "none")."""
    extra = sorted({g for row in table.values() for g in row} - set(labels))
    cols = list(labels) + extra
    lines = ["| truth \\ analyzed | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for truth in labels:
        if truth in table:
            lines.append(f"| {truth} | " + " | ".join(str(table[truth].get(c, 0)) for c in cols) + " |")
    return lines
