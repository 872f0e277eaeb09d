"""SageSLA through the optional SpargeAttn package (``spas_sage_attn``): the reference's own kernels.

Never required.  The ``spargeattn`` attention backend calls :func:`spargeattn_attention`, which
computes the same function as :func:`kernels.sla.sagesla_attention`:

* the block map is ours (:func:`kernels.sla.sla_block_indices`, the reference's pooling and top-k)
  with the package's block shape -- 64 query x 128 key rows on sm90 (H100/H200), 128 x 64
  elsewhere, the shape its ``mask_id`` argument has (FORMATS.md section 4; the shape
  :func:`kernels.sla.sage_blocks` picks by default too);
* the sparse branch is SpargeAttn's block-sparse SageAttention-2 kernel,
  ``spas_sage_attn.block_sparse_sage2_attn_cuda`` (int8 q/k per block after smoothing k by its
  sequence mean, fp8 v, fp32 accumulation), with its P·V skipping turned off (``pvthreshd``
  :data:`PV_THRESHOLD_OFF`, as TurboDiffusion's SageSLA runs it) and the softmax scale D^-0.5;
* the linear branch is ours (:func:`linear_branch`): phi = softmax over the head dimension, then
  ``proj_l``.

Nothing here imports the package at module import; :func:`unavailable_reason` says why the backend
cannot run on a device (package missing, no CUDA, too old a GPU, head dim not 64/128).
"""

from __future__ import annotations

import importlib
import importlib.util

import torch
import torch.nn.functional as F

from kernels import sla

PACKAGE = "spas_sage_attn"
INSTALL = "pip install git+https://github.com/thu-ml/SpargeAttn.git --no-build-isolation"
# The package's P·V threshold: a block's P·V is skipped when its row maxima barely move; a
# threshold this large never skips (the value TurboDiffusion's SageSLA ports pass per head).
PV_THRESHOLD_OFF = 1e6
# The package refuses sequences shorter than this (its own assertion).
MIN_LEN = 128
# Set by kernels.registry.reference_only(): spargeattn_attention then runs SageSLA's reference.
REFERENCE_ONLY = False


def package_blocks(device) -> tuple[int, int]:
    """(query rows, key rows) of the package's block map on ``device``: the reference's SageSLA
    shape, 64 x 128 on sm90 and 128 x 64 elsewhere (whatever :data:`kernels.sla.SAGE_BLOCKS` says)."""
    return sla.reference_sage_blocks(device)


def unavailable_reason(device=None, head_dim: int = 128) -> str | None:
    """None when :func:`spargeattn_attention` can run on ``device`` (default: the current CUDA
    device), else one line saying why and what to do."""
    if importlib.util.find_spec(PACKAGE) is None:
        return f"the optional SpargeAttn package ({PACKAGE}) is not installed: {INSTALL}, or use sagesla"
    if not torch.cuda.is_available() or (device is not None and torch.device(device).type != "cuda"):
        return "SpargeAttn runs on a CUDA GPU only: use --device cuda, or sagesla / sla on this device"
    major, minor = torch.cuda.get_device_capability(device)
    if major < 8:
        return f"SpargeAttn needs compute capability 8.0 or newer (this GPU: {major}.{minor}); use sla"
    if head_dim not in (64, 128):
        return f"SpargeAttn supports head dim 64 or 128, not {head_dim}; use sagesla"
    return None


def linear_branch(q, k, v, proj_weight, proj_bias) -> torch.Tensor:
    """SLA's linear branch with ``proj_l``, float32 [B, L, H, D], for q, k, v [B, L, H, D]: on CUDA
    from the Triton state kernel (``proj_l`` folded into the [D, D] state), elsewhere the reference."""
    B, L, H, D = q.shape
    if not sla.triton_usable(q) or D not in (64, 128):
        o = sla.linear_attention_reference(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        o = F.linear(o, proj_weight.float(), None if proj_bias is None else proj_bias.float())
        return o.transpose(1, 2)
    if k.stride() != v.stride() or k.stride(-1) != 1:
        k, v = k.contiguous(), v.contiguous()
    kvw, ksum = sla._linear_branch_state(k, v, proj_weight)  # [B*H, D, D], [B*H, D]
    phi = torch.softmax(q.float(), dim=-1)  # [B, L, H, D]
    num = torch.einsum("blhd,bhde->blhe", phi, kvw.view(B, H, D, D))
    den = 1e-5 + torch.einsum("blhd,bhd->blh", phi, ksum.view(B, H, D))  # eps from SLA/core.py
    out = num / den[..., None]
    if proj_bias is not None:
        out = out + proj_bias.float()
    return out


def spargeattn_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    proj_weight: torch.Tensor, proj_bias: torch.Tensor | None, topk: float,
) -> torch.Tensor:
    """SageSLA with SpargeAttn's sparse kernel; q, k, v [B, L, H, D] -> [B, L, H, D] in q's dtype.
    Sequences shorter than :data:`MIN_LEN` (which the package refuses), and every call inside
    :func:`kernels.registry.reference_only`, go to :func:`kernels.sla.sagesla_attention`."""
    B, L, H, D = q.shape
    if L < MIN_LEN or REFERENCE_ONLY:
        return sla.sagesla_attention(q, k, v, proj_weight, proj_bias, topk)
    spas = importlib.import_module(PACKAGE)
    blkq, blkk = package_blocks(q.device)
    idx, _ = sla.sla_block_indices(q, k, topk, blkq, blkk)  # [B, H, nQ, n] ascending
    mask = torch.zeros(B, H, idx.shape[2], -(-L // blkk), dtype=torch.bool, device=q.device)
    mask.scatter_(-1, idx.long(), True)
    o_sparse = spas.block_sparse_sage2_attn_cuda(
        q, k, v, mask_id=mask, scale=D**-0.5, smooth_k=True, pvthreshd=PV_THRESHOLD_OFF,
        tensor_layout="NHD", output_dtype=q.dtype,
    )
    return (o_sparse.float() + linear_branch(q, k, v, proj_weight, proj_bias)).to(q.dtype)
