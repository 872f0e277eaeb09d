"""The optional SpargeAttn backend (``spargeattn``) without the package: a stand-in module with the
package's entry point (``block_sparse_sage2_attn_cuda``, computing exact block-sparse attention
in torch) checks what we pass it and that the backend adds up to the SLA reference; where the
package is missing, the registry and the engine say so in one line."""

from __future__ import annotations

import importlib.machinery
import sys
import types

import pytest
import torch

from _reference import fixture
from engine.models.attention import BACKENDS, AttnOp
from kernels import sla, sparge


class FakeSpargeAttn(types.ModuleType):
    """``spas_sage_attn`` stand-in: block-sparse softmax attention on ``mask_id`` in float32."""

    def __init__(self):
        super().__init__(sparge.PACKAGE)
        self.__spec__ = importlib.machinery.ModuleSpec(sparge.PACKAGE, loader=None)
        self.calls: list[dict] = []

    def block_sparse_sage2_attn_cuda(self, q, k, v, mask_id=None, dropout_p=0.0, scale=None, smooth_k=True,
                                     pvthreshd=50, attention_sink=False, tensor_layout="HND",
                                     output_dtype=torch.float16, return_sparsity=False):
        self.calls.append(dict(layout=tensor_layout, scale=scale, smooth_k=smooth_k, pvthreshd=pvthreshd,
                               mask=mask_id, shape=tuple(q.shape)))
        assert tensor_layout == "NHD" and mask_id.is_contiguous() and mask_id.dtype == torch.bool
        qh, kh, vh = (t.transpose(1, 2).float() for t in (q, k, v))  # [B, H, L, D]
        L = qh.shape[2]
        nq, nk = mask_id.shape[2:]
        blkq = 128 if nq == -(-L // 128) else 64
        blkk = 64 if nk == -(-L // 64) else 128
        rows, cols = torch.arange(L) // blkq, torch.arange(L) // blkk
        allowed = mask_id[:, :, rows][:, :, :, cols]  # [B, H, L, L]
        s = (qh @ kh.transpose(-1, -2)) * scale
        out = torch.softmax(s.masked_fill(~allowed, float("-inf")), dim=-1) @ vh
        return out.transpose(1, 2).to(q.dtype)


@pytest.fixture
def fake_package(monkeypatch):
    mod = FakeSpargeAttn()
    monkeypatch.setitem(sys.modules, sparge.PACKAGE, mod)
    return mod


def _qkv(L, H=2, D=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, L, H, D, generator=g) for _ in range(3))
    w, b = torch.randn(D, D, generator=g) / D**0.5, torch.randn(D, generator=g) * 0.1
    return q, k + 0.3, v, w, b


def test_backend_matches_the_sla_core_fixture(fake_package):
    """On the reference fixture (L = 520, partial blocks) the backend -- our block map, the
    package's sparse branch, our linear branch -- gives the reference's outputs."""
    t, side = fixture("sla_core")
    op = AttnOp("spargeattn", head_dim=32)
    op.load_state_dict({"local_attn.proj_l.weight": t["weights.proj_l.weight"],
                        "local_attn.proj_l.bias": t["weights.proj_l.bias"]})
    with torch.no_grad():
        for topk in ("0.12", "0.25", "0.5"):
            out = op(t["input.q"], t["input.k"], t["input.v"], float(topk))
            torch.testing.assert_close(out, t[f"expected.topk{topk}.output"],
                                       atol=side["tolerance"]["atol"], rtol=side["tolerance"]["rtol"])
    call = fake_package.calls[-1]
    assert call["scale"] == 32**-0.5 and call["smooth_k"] is True
    assert call["pvthreshd"] == sparge.PV_THRESHOLD_OFF  # the package's P·V skipping stays off
    assert call["mask"].shape == (1, t["input.q"].shape[2], 520 // 128 + 1, 520 // 64 + 1)
    assert "spargeattn" in BACKENDS


def test_mask_follows_the_package_block_shape(fake_package, monkeypatch):
    """With the sm90 shape (64 query x 128 key rows) the mask has that shape, keeps int(topk * K)
    key blocks per query block, and the result is the SLA reference on those blocks."""
    monkeypatch.setattr(sparge, "package_blocks", lambda device: (64, 128))
    q, k, v, w, b = _qkv(1000)
    out = sparge.spargeattn_attention(q, k, v, w, b, 0.25)
    mask = fake_package.calls[-1]["mask"]
    assert mask.shape == (1, 2, 16, 8)
    assert (mask.sum(-1) == sla.selected_blocks(0.25, 8)).all()
    want = sla.sla_reference(q, k, v, w, b, 0.25, blkq=64, blkk=128)
    torch.testing.assert_close(out, want, atol=2e-5, rtol=1e-4)


def test_short_sequences_skip_the_package(fake_package):
    q, k, v, w, b = _qkv(100)  # the package asserts L >= 128
    out = sparge.spargeattn_attention(q, k, v, w, b, 0.5)
    assert not fake_package.calls
    torch.testing.assert_close(out, sla.sagesla_attention(q, k, v, w, b, 0.5))


def test_missing_package_is_reported_and_refused(monkeypatch):
    """Without the package: one line with the install command, in the registry and from the engine,
    which refuses the backend before loading anything."""
    from engine.api import LaunchConfig
    from engine.errors import ValidationError
    from engine.pipeline import ResidentPipeline
    from kernels.registry import available_backends

    monkeypatch.setattr(sparge.importlib.util, "find_spec", lambda name: None)
    why = sparge.unavailable_reason()
    assert "SpargeAttn" in why and sparge.INSTALL in why and "\n" not in why
    assert available_backends()["spargeattn"] == (False, why)
    with pytest.raises(ValidationError, match="spargeattn.*not installed"):
        ResidentPipeline(LaunchConfig(model="tiny", attention="spargeattn", device="cpu"))


def test_installed_package_on_a_cpu_is_refused(fake_package):
    from engine.api import LaunchConfig
    from engine.errors import ValidationError
    from engine.pipeline import ResidentPipeline

    assert "CUDA GPU" in sparge.unavailable_reason("cpu")
    with pytest.raises(ValidationError, match="CUDA GPU only"):
        ResidentPipeline(LaunchConfig(model="tiny", attention="spargeattn", device="cpu"))


def test_reference_only_runs_the_sagesla_reference(fake_package):
    """Under kernels.registry.reference_only() (the benchmarks' plain path) the backend does not
    call the package and gives SageSLA's reference."""
    from kernels.registry import reference_only

    q, k, v, w, b = _qkv(600, seed=3)
    op = AttnOp("spargeattn", head_dim=32)
    op.load_state_dict({"local_attn.proj_l.weight": w, "local_attn.proj_l.bias": b})
    with torch.no_grad(), reference_only():
        out = op(q, k, v, 0.2)
    assert not fake_package.calls
    torch.testing.assert_close(out, sla.sagesla_attention(q, k, v, w, b, 0.2))


CUDA = torch.cuda.is_available()


def _cuda_qkv(L, H, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    q, k, v = (torch.randn(1, L, H, 128, device="cuda", generator=g).to(torch.bfloat16) for _ in range(3))
    w = (torch.randn(128, 128, device="cuda", generator=g) / 128**0.5).to(torch.bfloat16)
    b = (torch.randn(128, device="cuda", generator=g) * 0.1).to(torch.bfloat16)
    return q, k, v, w, b


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_cuda_linear_branch_at_the_1_3b_shape():
    """The Triton-state linear branch (proj_l folded in) against the reference, 12 x 32,760 x 128."""
    q, k, v, w, b = _cuda_qkv(32760, 12, seed=32760)
    lin = sparge.linear_branch(q, k, v, w, b)
    ref = torch.nn.functional.linear(
        sla.linear_attention_reference(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)),
        w.float(), b.float()).transpose(1, 2)
    assert ((lin - ref).norm() / ref.norm()).item() < 1e-2


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_cuda_path_with_the_stand_in(fake_package):
    """On a GPU: the package's block shape for this GPU, our Triton block map and linear branch,
    against the SLA reference on the same blocks (L small enough for the stand-in's dense scores)."""
    q, k, v, w, b = _cuda_qkv(4173, 3, seed=4173)
    blkq, blkk = sparge.package_blocks(q.device)
    assert (blkq, blkk) == ((64, 128) if torch.cuda.get_device_capability() == (9, 0) else (128, 64))
    out = sparge.spargeattn_attention(q, k, v, w, b, 0.1)
    ref = sla.sla_reference(q, k, v, w, b, 0.1, blkq=blkq, blkk=blkk)
    assert out.dtype == q.dtype and ((out.float() - ref.float()).norm() / ref.float().norm()).item() < 1e-2


@pytest.mark.skipif(not CUDA or sparge.unavailable_reason() is not None, reason="needs the SpargeAttn package and a GPU")
def test_real_package_matches_the_reference():
    """Only where SpargeAttn is installed: int8 q/k and fp8 v, so the tolerance is SageSLA's with fp8 P·V."""
    g = torch.Generator(device="cuda").manual_seed(5)
    q, k, v = (torch.randn(1, 4173, 3, 128, device="cuda", generator=g).to(torch.bfloat16) for _ in range(3))
    w = (torch.randn(128, 128, device="cuda", generator=g) / 128**0.5).to(torch.bfloat16)
    b = torch.zeros(128, device="cuda", dtype=torch.bfloat16)
    blkq, blkk = sparge.package_blocks(q.device)
    out = sparge.spargeattn_attention(q, k, v, w, b, 0.2)
    ref = sla.sla_reference(q, k, v, w, b, 0.2, blkq=blkq, blkk=blkk)
    assert ((out.float() - ref.float()).norm() / ref.float().norm()).item() < 6e-2
