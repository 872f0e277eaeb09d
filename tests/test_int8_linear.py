"""W8A8 Int8Linear against the int8_linear fixture: from an nn.Linear and through engine.loading."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _reference import fixture
from engine.configs import DiTConfig
from engine.loading import build_random_dit, load_dit
from engine.models.int8_linear import Int8Linear
from kernels.int8 import int8_gemm_reference, quantize_blockwise_reference


@pytest.fixture(scope="module")
def ref():
    return fixture("int8_linear")[0]


def _within_one_bf16_ulp(got: torch.Tensor, want: torch.Tensor) -> None:
    """|got - want| <= one bf16 ulp of want (sidecar tolerance of layer_output_bf16)."""
    want = want.float()
    exp = torch.floor(torch.log2(want.abs().clamp_min(2.0**-126)))
    ulp = torch.pow(2.0, exp - 7)
    assert bool(((got.float() - want).abs() <= ulp).all()), float((got.float() - want).abs().max())


def _linear(t: dict, dtype=torch.bfloat16) -> nn.Linear:
    lin = nn.Linear(256, 384).to(dtype)
    with torch.no_grad():
        lin.weight.copy_(t["input.weight"])
        lin.bias.copy_(t["input.bias"])
    return lin


def _check(q: Int8Linear, t: dict) -> None:
    assert q.int8_weight.dtype == torch.int8 and q.scale.dtype == torch.float32
    assert torch.equal(q.int8_weight, t["expected.w_int8"])
    assert torch.equal(q.scale, t["expected.w_scale"])  # exact, FORMATS.md section 11
    with torch.no_grad():
        out = q(t["input.x"].bfloat16())
    assert out.dtype == torch.bfloat16 and out.shape == (200, 384)
    _within_one_bf16_ulp(out, t["expected.layer_output_bf16"])


def test_from_linear(ref):
    q = Int8Linear.from_linear(_linear(ref))
    assert q.bias.dtype == torch.bfloat16  # the bias keeps the weight's dtype
    _check(q, ref)


def test_activation_quantization_and_gemm(ref):
    x_q, x_s = quantize_blockwise_reference(ref["input.x"].bfloat16())
    assert torch.equal(x_q, ref["expected.x_int8"]) and torch.equal(x_s, ref["expected.x_scale"])
    gemm = int8_gemm_reference(x_q, x_s, ref["expected.w_int8"], ref["expected.w_scale"])
    torch.testing.assert_close(gemm, ref["expected.gemm_float32"], atol=1e-6, rtol=1e-6)


def test_dequantized_weight_is_close(ref):
    q = Int8Linear.from_linear(_linear(ref))
    w = ref["input.weight"]
    err = (q.dequantized_weight() - w).abs()
    step = q.scale.repeat_interleave(128, 0)[:384].repeat_interleave(128, 1)[:, :256]
    # half a step per element, except +amax, which saturates to 127 (one step below)
    assert bool((err <= step * 1.0001).all())
    assert float((err <= step / 2 * 1.0001).float().mean()) > 0.99


CFG = DiTConfig(dim=256, ffn_dim=384, num_heads=2, num_layers=1, text_dim=32)  # ffn.0 is [384, 256]


@pytest.fixture(scope="module")
def dense_file(ref, tmp_path_factory):
    """A float32 .pth DiT file whose blocks.0.ffn.0 holds the fixture's linear."""
    m = build_random_dit(CFG, seed=3, attention="sla")
    sd = m.state_dict()
    sd["blocks.0.ffn.0.weight"] = ref["input.weight"].clone()
    sd["blocks.0.ffn.0.bias"] = ref["input.bias"].clone()
    path = tmp_path_factory.mktemp("int8") / "dit.pth"
    torch.save(sd, path)
    return path


def test_quantize_at_load(ref, dense_file):
    m = load_dit(dense_file, CFG, attention="sla", quant_linear=True, dtype=torch.bfloat16)
    assert any("quantized to int8 at load" in n for n in m.load_notes)
    for name in ("q", "k", "v", "o"):
        assert isinstance(getattr(m.blocks[0].self_attn, name), Int8Linear)
        assert isinstance(getattr(m.blocks[0].cross_attn, name), Int8Linear)
    assert isinstance(m.blocks[0].self_attn.attn_op.local_attn.proj_l, nn.Linear)  # never quantized
    assert isinstance(m.patch_embedding, nn.Linear) and isinstance(m.head.head, nn.Linear)
    _check(m.blocks[0].ffn[0], ref)


def test_quant_file_loads_as_int8_even_when_not_asked(ref, dense_file, tmp_path):
    quant = load_dit(dense_file, CFG, attention="sla", quant_linear=True, dtype=torch.bfloat16)
    qpath = tmp_path / "dit-quant.pth"
    torch.save(quant.state_dict(), qpath)
    m = load_dit(qpath, CFG, attention="sla", quant_linear=False, dtype=torch.bfloat16)
    assert any("-quant" in n for n in m.load_notes)
    _check(m.blocks[0].ffn[0], ref)
    for k, v in quant.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k
    # and it runs
    x = torch.randn(1, 16, 1, 4, 4)
    with torch.no_grad():
        out = m(x, torch.tensor([[500.0]]), torch.randn(1, 8, 32))
    assert out.shape == x.shape and bool(torch.isfinite(out).all())


def test_random_quantized_model_is_the_quantized_random_model():
    """init_random_ keys Int8Linear buffers by the float weight's name."""
    dense = build_random_dit(CFG, seed=5, attention="original", dtype=torch.bfloat16)
    quant = build_random_dit(CFG, seed=5, attention="original", quant_linear=True, dtype=torch.bfloat16)
    ref_q = Int8Linear.from_linear(dense.blocks[0].ffn[2])
    assert torch.equal(quant.blocks[0].ffn[2].int8_weight, ref_q.int8_weight)
    assert torch.equal(quant.blocks[0].ffn[2].scale, ref_q.scale)
