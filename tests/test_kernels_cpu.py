"""CPU tests for kernels/: the launchers fall back to their references, files import without
compiling anything, and the backend registry explains itself.  Run in CI (no GPU)."""

from __future__ import annotations

import importlib

import torch

from kernels import int8 as i8
from kernels import norms, sla
from kernels.registry import ATTENTION_BACKENDS, LINEAR_BACKENDS, available_backends


def test_kernel_files_import_and_expose_launchers():
    for mod in ("kernels.sla", "kernels.int8", "kernels.norms", "kernels.registry"):
        importlib.import_module(mod)
    for name in ("sla_attention", "sagesla_attention", "sla_reference", "sla_block_map", "selected_blocks"):
        assert callable(getattr(sla, name))
    for name in ("quantize_weight", "int8_linear", "int8_linear_reference", "quantize_blockwise_reference"):
        assert callable(getattr(i8, name))


def _qkv(B=1, L=300, H=2, D=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, L, H, D, generator=g) for _ in range(3))
    return q, k, v, torch.randn(D, D, generator=g) / D**0.5, torch.randn(D, generator=g) * 0.1


def test_sla_and_sagesla_fall_back_to_reference_on_cpu():
    q, k, v, w, b = _qkv()
    ref = sla.sla_reference(q, k, v, w, b, 0.3)
    assert torch.equal(sla.sla_attention(q, k, v, w, b, 0.3), ref)
    assert torch.equal(sla.sagesla_attention(q, k, v, w, b, 0.3), ref)
    # per-call topk changes the result
    assert not torch.equal(sla.sla_attention(q, k, v, w, b, 0.9), ref)


def test_selected_blocks_count_and_block_map():
    assert sla.selected_blocks(0.29, 100) == 28  # Python float product truncated
    assert sla.selected_blocks(0.1, 512) == 51  # 480p: 51 of 512 key blocks
    assert sla.selected_blocks(0.0, 10) == 1
    q, k, _, _, _ = _qkv(L=1000)
    qh, kh = q.transpose(1, 2), k.transpose(1, 2)
    bm = sla.sla_block_map(qh, kh, 0.25)
    assert bm.shape == (1, 2, 8, 16)
    assert (bm.sum(-1) == 4).all()
    idx, k_mean = sla.sla_block_indices(q, k, 0.25)
    bm2 = torch.zeros_like(bm)
    bm2.scatter_(-1, idx.long(), True)
    assert torch.equal(bm, bm2)
    assert torch.allclose(k_mean, kh.float().mean(2, keepdim=True))


def test_sla_reference_dense_limit():
    """topk = 1 selects every block: the sparse branch is plain softmax attention."""
    q, k, v, w, b = _qkv(L=200)
    _, parts = sla.sla_reference(q, k, v, w, b, 1.0, return_parts=True)
    qh, kh, vh = (t.transpose(1, 2) for t in (q, k, v))
    dense = torch.nn.functional.scaled_dot_product_attention(qh, kh, vh)
    assert torch.allclose(parts["o_sparse"], dense, atol=1e-5)


def test_int8_launchers_fall_back_on_cpu():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 100, 256, generator=g).to(torch.bfloat16)
    w = (torch.randn(384, 256, generator=g) / 16).to(torch.bfloat16)
    bias = torch.randn(384, generator=g).to(torch.bfloat16)
    w_q, w_s = i8.quantize_weight(w)
    assert w_q.dtype == torch.int8 and w_s.shape == (3, 2)
    y = i8.int8_linear(x, w_q, w_s, bias)
    assert torch.equal(y, i8.int8_linear_reference(x, w_q, w_s, bias))
    assert ((y.float() - torch.nn.functional.linear(x, w, bias).float()).norm()
            / torch.nn.functional.linear(x, w, bias).float().norm()) < 2e-2


def test_int8_quant_rule_half_even_and_saturation():
    x = torch.zeros(4, 128, dtype=torch.bfloat16)
    x[0, :6] = torch.tensor([128.0, 2.5, -3.5, 0.5, -128.0, 1.5])
    q, s = i8.quantize_blockwise_reference(x)
    assert q[0, :6].tolist() == [127, 2, -4, 0, -128, 2]
    assert s.item() == 1.0


def test_norm_launchers_fall_back_on_cpu():
    x = torch.randn(2, 10, 64).to(torch.bfloat16)
    sh, sc = torch.randn(2, 1, 64), torch.randn(2, 1, 64)
    assert torch.equal(norms.layer_norm_modulate(x, sh, sc), norms.layer_norm_modulate_reference(x, sh, sc))
    w = torch.randn(64).to(torch.bfloat16)
    assert torch.equal(norms.rms_norm(x, w), norms.rms_norm_reference(x, w))
    assert torch.equal(norms.rms_norm(x, w, fast=False), norms.rms_norm_reference(x, w, fast=False))


def test_registry_lists_every_backend_with_reasons():
    av = available_backends()
    assert set(av) == set(ATTENTION_BACKENDS) | set(LINEAR_BACKENDS)
    for name, (usable, reason) in av.items():
        assert isinstance(usable, bool) and isinstance(reason, str) and reason, name
    assert av["original"][0] and av["bf16"][0]
    if not torch.cuda.is_available():
        for name in ("sla", "sagesla", "int8"):
            assert av[name] == (False, "no CUDA GPU (CPU runs the plain-torch reference)")
