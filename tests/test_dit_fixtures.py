"""The Wan DiT against the reference fixtures (float32, CPU): t2v with intermediates, i2v, SLA.

Tolerances come from each fixture's sidecar (FORMATS.md section 11).
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from _reference import dit_config, fixture, subdict
from engine.loading import load_dit
from engine.models.wan_dit import WanDiT, rope_angles


def _model(name: str, attention: str = "original", fast_norm: bool = False) -> tuple[WanDiT, dict, dict]:
    """The fixture's network: built on meta, weights assigned (what engine.loading does)."""
    t, side = fixture(name)
    with torch.device("meta"):
        m = WanDiT(dit_config(side), attention=attention, fast_norm=fast_norm)
    m.load_state_dict(subdict(t, "weights."), strict=True, assign=True)
    return m.eval(), t, side


def _close(got, want, side):
    tol = side["tolerance"]
    torch.testing.assert_close(got, want, atol=tol["atol"], rtol=tol["rtol"])


@pytest.fixture(scope="module")
def t2v():
    return _model("dit_t2v")


@torch.no_grad()
def test_t2v_output(t2v):
    m, t, side = t2v
    out = m(t["input.x_B_C_T_H_W"], t["input.timesteps_B_T"], t["input.crossattn_emb"])
    assert out.shape == t["expected.output"].shape and out.dtype == torch.float32
    _close(out, t["expected.output"], side)


@torch.no_grad()
def test_t2v_intermediates(t2v):
    m, t, side = t2v
    e, e0 = m.embed_time(t["input.timesteps_B_T"])
    _close(e, t["expected.time_embedding"], side)
    _close(e0.flatten(1), t["expected.time_projection"], side)
    _close(m.embed_text(t["input.crossattn_emb"]), t["expected.text_embedding"], side)
    # rope angles for the (3, 4, 6) patch grid, head_dim 32 -> columns t 6 | h 5 | w 5
    torch.testing.assert_close(rope_angles(m.cfg.head_dim, 3, 4, 6), t["expected.rope_angles"], atol=0, rtol=0)

    seen = {}
    hook = m.blocks[0].register_forward_hook(lambda mod, args, out: seen.setdefault("block0", out))
    try:
        m(t["input.x_B_C_T_H_W"], t["input.timesteps_B_T"], t["input.crossattn_emb"])
    finally:
        hook.remove()
    _close(seen["block0"], t["expected.block0_output"], side)


@torch.no_grad()
def test_t2v_fast_norm_matches_in_float32():
    m, t, side = _model("dit_t2v", fast_norm=True)
    assert m.blocks[0].self_attn.norm_q.weight.dtype == torch.float32
    out = m(t["input.x_B_C_T_H_W"], t["input.timesteps_B_T"], t["input.crossattn_emb"])
    _close(out, t["expected.output"], side)


@torch.no_grad()
def test_i2v_output():
    m, t, side = _model("dit_i2v")
    out = m(t["input.x_B_C_T_H_W"], t["input.timesteps_B_T"], t["input.crossattn_emb"], y_B_C_T_H_W=t["input.y_B_C_T_H_W"])
    _close(out, t["expected.output"], side)
    with pytest.raises(ValueError, match="y_B_C_T_H_W"):
        m(t["input.x_B_C_T_H_W"], t["input.timesteps_B_T"], t["input.crossattn_emb"])


def _capture_block_maps(m: WanDiT) -> tuple[dict, list]:
    """Hook every SLA op and record the block map of the q, k it was called with."""
    from kernels.sla import sla_block_map

    maps: dict[int, torch.Tensor] = {}

    def hook(i):
        def fn(mod, args, out):
            q, k, _, topk = args
            maps[i] = sla_block_map(q.transpose(1, 2), k.transpose(1, 2), topk)
        return fn

    handles = [b.self_attn.attn_op.local_attn.register_forward_hook(hook(i)) for i, b in enumerate(m.blocks)]
    return maps, handles


@pytest.mark.parametrize("backend", ["sla", "sagesla"])  # sagesla is sla on CPU
@torch.no_grad()
def test_sla_output_and_block_maps(backend):
    m, t, side = _model("dit_t2v_sla", attention=backend)
    topk = side["config"]["sla"]["topk"]
    maps, handles = _capture_block_maps(m)
    try:
        out = m(t["input.x_B_C_T_H_W"], t["input.timesteps_B_T"], t["input.crossattn_emb"], sla_topk=topk)
    finally:
        for h in handles:
            h.remove()
    _close(out, t["expected.output"], side)
    for i in range(len(m.blocks)):
        assert torch.equal(maps[i].int(), t[f"expected.block{i}.sla_block_map"].int()), f"block {i}"


@torch.no_grad()
def test_sla_topk_is_per_call():
    m, t, side = _model("dit_t2v_sla", attention="sla")
    args = (t["input.x_B_C_T_H_W"], t["input.timesteps_B_T"], t["input.crossattn_emb"])
    assert m.sla_topk == 0.1
    weights_before = {k: v.clone() for k, v in m.state_dict().items()}
    out_full = m(*args, sla_topk=1.0)
    out_half = m(*args, sla_topk=0.5)
    _close(out_half, t["expected.output"], side)
    assert not torch.allclose(out_full, out_half)
    m.sla_topk = 0.5  # the attribute is the default of later calls
    torch.testing.assert_close(m(*args), out_half, atol=0, rtol=0)
    assert all(torch.equal(v, weights_before[k]) for k, v in m.state_dict().items())


@torch.no_grad()
def test_load_dit_float32_reproduces_fixtures(tmp_path):
    """The whole loading path (file -> meta -> assign), published fast-norm layout, SLA and dense."""
    t, side = fixture("dit_t2v_sla")
    path = tmp_path / "dit_sla.safetensors"
    save_file(subdict(t, "weights."), str(path))
    args = (t["input.x_B_C_T_H_W"], t["input.timesteps_B_T"], t["input.crossattn_emb"])
    m = load_dit(path, dit_config(side), attention="sla", dtype=torch.float32)
    _close(m(*args, sla_topk=0.5), t["expected.output"], side)

    # `original` loads the SLA file too (proj_l ignored) and then equals the dense reference net.
    dense = load_dit(path, dit_config(side), attention="original", dtype=torch.float32)
    assert any("proj_l" in n for n in dense.load_notes)
    t2, side2 = fixture("dit_t2v")
    out = dense(t2["input.x_B_C_T_H_W"], t2["input.timesteps_B_T"], t2["input.crossattn_emb"])
    _close(out, t2["expected.output"], side2)


@torch.no_grad()
def test_bfloat16_keeps_time_and_modulation_in_float32(tmp_path):
    t, side = fixture("dit_t2v")
    path = tmp_path / "dit.safetensors"
    save_file(subdict(t, "weights."), str(path))
    m = load_dit(path, dit_config(side), attention="original", dtype=torch.bfloat16)
    assert m.dtype == torch.bfloat16
    assert m.blocks[0].norm3.weight.dtype == torch.float32  # fast-norm weights stay float32
    e, e0 = m.embed_time(t["input.timesteps_B_T"])
    assert e.dtype == e0.dtype == torch.float32
    # bf16 rounding of the weights only; the time path itself is float32
    torch.testing.assert_close(e, t["expected.time_embedding"], atol=0.05, rtol=0.05)
    out = m(t["input.x_B_C_T_H_W"], t["input.timesteps_B_T"], t["input.crossattn_emb"])
    assert out.dtype == torch.float32
    # FORMATS.md section 11: bf16 lands up to ~0.56 from the float32 fixture
    assert (out - t["expected.output"]).abs().max() < 1.0
