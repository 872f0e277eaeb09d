"""Cheap live previews: a linear map from Wan2.1 latents to RGB, no VAE.

Factors and bias as published in ComfyUI ``comfy/latent_formats.py`` (class Wan21), the same
numbers as shared/reference/wan21_latent_rgb.json.  ``rgb[c] = sum_k z[k] * F[k][c] + b[c]``
on the normalized latent; output roughly in [-1, 1], one pixel per latent pixel (8x8 video
pixels) and one frame per latent frame (4 video frames).
"""

from __future__ import annotations

import torch

from engine.api import Preview

LATENT_RGB_FACTORS = (
    (-0.1299, -0.1692, 0.2932),
    (0.0671, 0.0406, 0.0442),
    (0.3568, 0.2548, 0.1747),
    (0.0372, 0.2344, 0.1420),
    (0.0313, 0.0189, -0.0328),
    (0.0296, -0.0956, -0.0665),
    (-0.3477, -0.4059, -0.2925),
    (0.0166, 0.1902, 0.1975),
    (-0.0412, 0.0267, -0.1364),
    (-0.1293, 0.0740, 0.1636),
    (0.0680, 0.3019, 0.1128),
    (0.0032, 0.0581, 0.0639),
    (-0.1251, 0.0927, 0.1699),
    (0.0060, -0.0633, 0.0005),
    (0.3477, 0.2275, 0.2950),
    (0.1984, 0.0913, 0.1861),
)
LATENT_RGB_BIAS = (-0.1835, -0.0868, -0.3360)


def latent_to_rgb(latent: torch.Tensor) -> torch.Tensor:
    """[16, T, h, w] normalized latent -> uint8 [T, h, w, 3] (on the latent's device)."""
    f = torch.tensor(LATENT_RGB_FACTORS, dtype=torch.float32, device=latent.device)  # [16, 3]
    b = torch.tensor(LATENT_RGB_BIAS, dtype=torch.float32, device=latent.device)
    rgb = torch.einsum("cthw,ck->thwk", latent.float(), f) + b  # [T, h, w, 3] in ~[-1, 1]
    return ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def make_preview(latent: torch.Tensor, max_frames: int = 8) -> Preview:
    """A Preview of one sample's latent [16, T, h, w]: up to ``max_frames`` evenly spaced frames."""
    rgb = latent_to_rgb(latent).cpu()
    T = rgb.shape[0]
    idx = sorted({round(i * (T - 1) / max(1, max_frames - 1)) for i in range(min(T, max_frames))})
    frames = tuple(rgb[i].contiguous().numpy().tobytes() for i in idx)
    return Preview(width=rgb.shape[2], height=rgb.shape[1], frames=frames)
