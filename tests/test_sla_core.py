"""SLA against the sla_core fixture (L=520: partial last blocks), via kernels.sla and the backends."""

from __future__ import annotations

import pytest
import torch

from _reference import fixture
from engine.models.attention import BACKENDS, AttnOp
from kernels.sla import selected_blocks, sla_attention, sla_reference

TOPKS = ("0.12", "0.25", "0.5", "1.0")


@pytest.fixture(scope="module")
def ref():
    return fixture("sla_core")


def _tol(side):
    return dict(atol=side["tolerance"]["atol"], rtol=side["tolerance"]["rtol"])


@pytest.mark.parametrize("topk", TOPKS)
def test_output_and_block_map(ref, topk):
    t, side = ref
    args = (t["input.q"], t["input.k"], t["input.v"], t["weights.proj_l.weight"], t["weights.proj_l.bias"], float(topk))
    out, parts = sla_reference(*args, return_parts=True)
    torch.testing.assert_close(out, t[f"expected.topk{topk}.output"], **_tol(side))
    assert torch.equal(parts["block_map"].int(), t[f"expected.topk{topk}.block_map"].int())
    assert selected_blocks(float(topk), 9) == side["config"]["selected_blocks"][topk]
    torch.testing.assert_close(sla_attention(*args), t[f"expected.topk{topk}.output"], **_tol(side))


def test_branches(ref):
    t, side = ref
    _, parts = sla_reference(t["input.q"], t["input.k"], t["input.v"], t["weights.proj_l.weight"],
                             t["weights.proj_l.bias"], 0.25, return_parts=True)
    for name in ("o_sparse", "o_linear", "block_scores"):
        torch.testing.assert_close(parts[name], t[f"expected.topk0.25.{name}"], **_tol(side))


@pytest.mark.parametrize("backend", ["sla", "sagesla"])
def test_backend_modules(ref, backend):
    """The DiT's attention op with the fixture's proj_l, topk given per call."""
    t, side = ref
    op = AttnOp(backend, head_dim=32)
    op.load_state_dict({"local_attn.proj_l.weight": t["weights.proj_l.weight"],
                        "local_attn.proj_l.bias": t["weights.proj_l.bias"]})
    with torch.no_grad():
        for topk in TOPKS:
            out = op(t["input.q"], t["input.k"], t["input.v"], float(topk))
            torch.testing.assert_close(out, t[f"expected.topk{topk}.output"], **_tol(side))


def test_original_backend_is_dense_softmax(ref):
    t, _ = ref
    q, k, v = t["input.q"], t["input.k"], t["input.v"]
    op = AttnOp("original", head_dim=32)
    assert not list(op.state_dict())
    s = torch.einsum("blhd,bmhd->bhlm", q, k) * 32**-0.5
    want = torch.einsum("bhlm,bmhd->blhd", s.softmax(-1), v)
    torch.testing.assert_close(op(q, k, v, 0.1), want, atol=1e-5, rtol=1e-4)
    assert set(BACKENDS) == {"original", "sla", "sagesla", "spargeattn"}
