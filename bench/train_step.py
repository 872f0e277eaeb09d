"""Steps per second of the tiny teacher phase at a few batch sizes, float32 vs bfloat16 autocast
(random VAE and text encoder: speed does not depend on the weights).

    python3 bench/train_step.py --device cuda --seconds 25
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from engine.train.common import Budget, new_text_encoder, new_vae, preset, save_safetensors  # noqa: E402
from engine.train.teacher import train_teacher  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seconds", type=float, default=25.0)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--configs", default="48:fp32,48:amp,96:amp")
    a = ap.parse_args(argv)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    p = preset("tiny")
    print("| batch | precision | steps | seconds | steps/s | clips/s |\n|---|---|---|---|---|---|")
    for cfg in a.configs.split(","):
        batch, prec = cfg.split(":")
        with tempfile.TemporaryDirectory() as d:
            save_safetensors(new_vae(p).state_dict(), Path(d) / "vae.safetensors")
            save_safetensors(new_text_encoder(p).state_dict(), Path(d) / "text_encoder.safetensors")
            train_teacher(Path(d), Budget(10**6, a.seconds), batch=int(batch), size=a.size, device=a.device,
                          bank=256, check_clips=0, amp=prec == "amp")
            done = [json.loads(x) for x in (Path(d) / "train.log").read_text().splitlines() if '"done"' in x][-1]
        rate = done["step"] / done["t"]
        print(f"| {batch} | {prec} | {done['step']} | {done['t']:.1f} | {rate:.2f} | {rate * int(batch):.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
