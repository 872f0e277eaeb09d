"""Reference data for the DiT / int8 / SLA / loading tests: ``<repo>/../shared/reference``.

(A plain module rather than a conftest so that it cannot collide with other test helpers.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
FIXTURES = REFERENCE / "fixtures"
KEYS = REFERENCE / "keys"


def _need(p: Path) -> Path:
    if not p.exists():
        pytest.skip(f"reference data not found: {p}")
    return p


def fixture(name: str) -> tuple[dict, dict]:
    """(tensors, sidecar) of fixtures/NAME.safetensors and NAME.json."""
    from safetensors.torch import load_file

    tensors = load_file(str(_need(FIXTURES / f"{name}.safetensors")))
    return tensors, json.loads(_need(FIXTURES / f"{name}.json").read_text())


def layout(name: str) -> dict:
    """keys/NAME.json: {key: {"shape": [...], "dtype": "..."}} in state_dict order."""
    return json.loads(_need(KEYS / f"{name}.json").read_text())


def subdict(tensors: dict, prefix: str) -> dict:
    """Entries of ``tensors`` under ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def dit_config(sidecar: dict):
    """The DiTConfig of a dit_* fixture sidecar."""
    from engine.configs import DiTConfig

    c = sidecar["config"]
    return DiTConfig(dim=c["dim"], ffn_dim=c["ffn_dim"], num_heads=c["num_heads"], num_layers=c["num_layers"],
                     in_dim=c["in_dim"], out_dim=c["out_dim"], text_dim=c["text_dim"], freq_dim=c["freq_dim"],
                     text_len=c["text_len"], patch_size=tuple(c["patch_size"]), eps=c["eps"])
