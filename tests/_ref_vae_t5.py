"""Reference data for the VAE / umT5 / tokenizer tests: ``<repo>/../shared/reference``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def reference_path(*parts: str) -> Path:
    """A file under the reference folder; skips the test where the folder is absent."""
    p = REFERENCE.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"reference data not found: {p}")
    return p


def load_fixture(name: str) -> tuple[dict, dict]:
    """(tensors, sidecar) of fixtures/NAME.safetensors and fixtures/NAME.json."""
    from safetensors.torch import load_file

    tensors = load_file(str(reference_path("fixtures", f"{name}.safetensors")))
    sidecar = json.loads(reference_path("fixtures", f"{name}.json").read_text())
    return tensors, sidecar


def load_layout(name: str) -> dict:
    """keys/NAME.json: {key: {"shape": [...], "dtype": "..."}} in state_dict order."""
    return json.loads(reference_path("keys", f"{name}.json").read_text())


def weights(tensors: dict) -> dict:
    """The ``weights.*`` entries of a fixture, with the prefix removed."""
    return {k[len("weights."):]: v for k, v in tensors.items() if k.startswith("weights.")}
