"""A PNG contact sheet of what a tiny model makes: one row per prompt, frames 0, 2, 4, 6, 8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


@torch.no_grad()
def contact_sheet(out: str | Path, prompts: list[str], seed: int = 0, frames=(0, 2, 4, 6, 8)) -> Path:
    from PIL import Image, ImageDraw

    from engine.api import LaunchConfig, default_request
    from engine.pipeline import ResidentPipeline
    from engine.video import read_mp4
    import tempfile

    engine = ResidentPipeline(LaunchConfig(model="tiny", device="cpu"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for prompt in prompts:
            res = engine.generate(default_request("tiny", prompt).replace(seed=seed), tmp)
            video = read_mp4(res.video_paths[0])
            strip = np.concatenate([np.pad(video[f], ((0, 0), (0, 4), (0, 0))) for f in frames], axis=1)
            label = Image.new("RGB", (strip.shape[1], 18), (255, 255, 255))
            ImageDraw.Draw(label).text((4, 3), f'"{prompt}"  (seed {seed})', fill=(0, 0, 0))
            rows += [np.asarray(label), strip, np.full((6, strip.shape[1], 3), 255, np.uint8)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(out)
    return out
