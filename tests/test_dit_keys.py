"""Every published DiT layout (keys/*.json): names, order, shapes and dtypes, built on meta."""

from __future__ import annotations

import json

import pytest
import torch

from _reference import KEYS, layout
from engine.configs import PRESETS
from engine.loading import expected_dit_keys
from engine.models.wan_dit import WanDiT

LAYOUTS = {
    "wan2.1_t2v_1.3B": ("Wan2.1-1.3B", False),
    "wan2.1_t2v_1.3B_quant": ("Wan2.1-1.3B", True),
    "wan2.1_t2v_14B": ("Wan2.1-14B", False),
    "wan2.1_t2v_14B_quant": ("Wan2.1-14B", True),
    "wan2.2_i2v_A14B": ("Wan2.2-A14B", False),
    "wan2.2_i2v_A14B_quant": ("Wan2.2-A14B", True),
}


@pytest.mark.parametrize("name", LAYOUTS)
def test_published_layout(name):
    preset, quant = LAYOUTS[name]
    want = layout(name)
    got = expected_dit_keys(PRESETS[preset].dit, "sla", quant)
    assert list(got) == list(want)  # same names in the same order
    for key, spec in want.items():
        shape, dtype = got[key]
        assert list(shape) == spec["shape"], key
        assert str(dtype).removeprefix("torch.") == spec["dtype"], key
    index = json.loads((KEYS / "index.json").read_text())["files"][f"{name}.json"]
    assert len(got) == index["num_keys"]
    assert sum(torch.Size(s).numel() for s, _ in got.values()) == index["numel"]


@pytest.mark.parametrize("sagesla", [False, True])
def test_sagesla_has_the_sla_layout(sagesla):
    cfg = PRESETS["Wan2.1-1.3B"].dit
    assert expected_dit_keys(cfg, "sagesla" if sagesla else "sla") == expected_dit_keys(cfg, "sla")


def test_original_backend_has_no_proj_l():
    keys = expected_dit_keys(PRESETS["Wan2.1-1.3B"].dit, "original")
    assert not any("proj_l" in k for k in keys)
    assert len(keys) == 885 - 2 * 30


def test_t2v_and_i2v_differ_only_in_patch_embedding():
    t2v = expected_dit_keys(PRESETS["Wan2.1-14B"].dit)
    i2v = expected_dit_keys(PRESETS["Wan2.2-A14B"].dit)
    assert [k for k in t2v if t2v[k] != i2v[k]] == ["patch_embedding.weight"]


def test_module_names_are_checkpoint_keys():
    with torch.device("meta"):
        m = WanDiT(PRESETS["tiny"].dit)
    names = set(m.state_dict())
    for key in ("patch_embedding.weight", "text_embedding.2.bias", "time_embedding.0.weight",
                "time_projection.1.weight", "blocks.3.modulation", "blocks.0.self_attn.norm_k.weight",
                "blocks.0.self_attn.attn_op.local_attn.proj_l.weight", "blocks.1.norm3.bias",
                "blocks.2.cross_attn.o.weight", "blocks.0.ffn.2.weight", "head.modulation", "head.head.bias"):
        assert key in names, key
    kt, kh, kw = PRESETS["tiny"].dit.patch_size
    assert m.patch_embedding.weight.shape == (PRESETS["tiny"].dit.dim, 16 * kt * kh * kw)  # a Linear, not a Conv3d
    assert not any(b.is_floating_point() for b in m.buffers())  # no rope buffers
