"""Where the pinned reference data lives: ../shared/reference beside the checkout."""

from __future__ import annotations

import json
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
FIXTURES = REFERENCE / "fixtures"


def fixture(name: str):
    """(tensors, sidecar) of fixtures/NAME.safetensors and NAME.json."""
    from safetensors.torch import load_file

    return load_file(str(FIXTURES / f"{name}.safetensors")), json.loads((FIXTURES / f"{name}.json").read_text())


def subdict(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
