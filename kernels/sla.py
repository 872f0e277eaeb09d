"""SLA: sparse-linear attention (block-sparse softmax attention + a linear branch).

Math follows shared/reference/FORMATS.md section 4 (TurboDiffusion SLA/core.py):

1. block scores: mean-pool q in blocks of ``blkq`` rows and the sequence-centred k
   ("smooth-k") in blocks of ``blkk`` rows; score = pooled_q @ pooled_k^T (no scale);
2. every query block keeps its ``n = min(K, int(topk * K))`` best key blocks;
3. sparse branch: softmax attention (scale D^-0.5) over the selected key blocks only;
4. linear branch over all keys with phi = softmax over the head dimension, then ``proj_l``;
5. output = sparse + proj_l(linear), in the input dtype.

This file holds, in order: the plain-torch reference (runs anywhere, the CPU path), the
Triton kernels (defined only where ``import triton`` works; nothing compiles at import) and
the public launchers :func:`sla_attention` and :func:`sagesla_attention`.

Fast path (CUDA + Triton), three launches plus small torch glue:

* block map: pooling in a Triton kernel that replays the fp32 summation order of the
  reference's torch reduction (k's sequence mean stays the reference's torch op), the
  reference's bf16 score matmul and ``torch.topk`` -- so the map is *identical* to
  :func:`sla_block_map` on the same inputs, ties included;
* ``_sla_kv_kernel``: one pass over k, v for the linear branch: per (batch, head) the
  partial sums of phi(k)^T v and phi(k) over chunks of the sequence;
  proj_l is folded in afterwards: ``(phi_q @ KV / den) @ W^T = phi_q @ (KV @ W^T) / den``;
* ``_sla_fwd_kernel``: block-sparse flash attention over the selected key blocks, and in its
  epilogue the whole linear branch for the same query rows (phi(q), the [D, D] product,
  the denominator, the proj_l bias), so the output is written once;
* ``_sla_fwd_tma_kernel``: the same on Hopper with q/k/v tiles loaded through TMA descriptors
  (a selected key block is a box at a run-time row of the [B*L, H*D] view), chosen when
  :func:`tma_usable`; 1.65 ms instead of 2.13 ms at the 1.3B shape on an H100.

SageSLA (:func:`sagesla_attention`): the same block map with SageSLA's block shape
(:func:`sage_blocks`: 64 query x 128 key rows on an H100/H200, as the reference's SageSLA does
on sm90; 128 x 64 elsewhere) and the same linear branch; q is quantized to int8 per (head, query
block), k per (head, key block) after subtracting its mean over the sequence (a per-query constant shift of the logits, so softmax is unchanged); Q·K^T
runs as an int8 dot with int32 accumulation, P·V in bf16 with fp32 accumulation (on the TMA
path optionally in fp8 e4m3, ``pv="fp8"``: measured no faster once its V quantization is counted).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels._triton import HAS_TRITON, libdevice, tl, triton

HAS_TRITON = HAS_TRITON and libdevice is not None  # SageSLA's rint

TensorDescriptor = None
if HAS_TRITON:
    try:  # host-side TMA descriptors (Triton >= 3.3); without them the pointer kernel runs
        from triton.tools.tensor_descriptor import TensorDescriptor
    except ImportError:  # pragma: no cover - depends on the Triton version
        pass

BLKQ = 128  # query block rows (reference SparseLinearAttention(BLKQ=128, BLKK=64))
BLKK = 64  # key block rows


def selected_blocks(topk: float, num_key_blocks: int) -> int:
    """Key blocks kept per query block: the reference's ``int(topk * K)`` (a Python float product).

    The reference yields NaN when this is 0 (an empty softmax); we keep at least one block.
    """
    return max(1, min(num_key_blocks, int(topk * num_key_blocks)))


def _pool_blocks(x: torch.Tensor, blk: int) -> torch.Tensor:
    """Mean of each block of ``blk`` rows along dim 2; the last, partial block averages what it has.

    x: [B, H, L, D] -> [B, H, ceil(L/blk), D] (computed in float32)
    """
    B, H, L, D = x.shape
    n = -(-L // blk)
    pad = n * blk - L
    xf = x.float()
    if pad:
        xf = F.pad(xf, (0, 0, 0, pad))
    sums = xf.view(B, H, n, blk, D).sum(dim=3)
    counts = torch.full((n,), float(blk), device=x.device)
    counts[-1] = blk - pad
    return sums / counts[:, None]


def _block_scores_and_mean(q: torch.Tensor, k: torch.Tensor, blkq: int, blkk: int):
    """(scores [B, H, nQ, nK] in q's dtype, k mean over the sequence [B, H, 1, D] float32)."""
    k_mean = k.float().mean(dim=2, keepdim=True)
    k_smooth = k.float() - k_mean
    pq = _pool_blocks(q, blkq).to(q.dtype)
    pk = _pool_blocks(k_smooth, blkk).to(q.dtype)
    return pq @ pk.transpose(-1, -2), k_mean


def sla_block_scores(q: torch.Tensor, k: torch.Tensor, blkq: int = BLKQ, blkk: int = BLKK) -> torch.Tensor:
    """Block scores [B, H, nQ, nK] for q, k in [B, H, L, D], in the input dtype."""
    return _block_scores_and_mean(q, k, blkq, blkk)[0]


def sla_block_map(
    q: torch.Tensor, k: torch.Tensor, topk: float, blkq: int = BLKQ, blkk: int = BLKK
) -> torch.Tensor:
    """Boolean block map [B, H, nQ, nK]: True where the sparse branch attends (q, k: [B, H, L, D])."""
    scores = sla_block_scores(q, k, blkq, blkk)
    n = selected_blocks(topk, scores.shape[-1])
    idx = scores.float().topk(n, dim=-1).indices
    block_map = torch.zeros_like(scores, dtype=torch.bool)
    block_map.scatter_(-1, idx, True)
    return block_map


def sparse_attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_map: torch.Tensor,
    blkq: int = BLKQ, blkk: int = BLKK,
) -> torch.Tensor:
    """Softmax attention restricted to the key blocks in ``block_map``; q, k, v: [B, H, L, D] -> float32.

    Loops over query blocks so memory stays at [B, H, blkq, L] (480p has L = 32,760).
    """
    B, H, L, D = q.shape
    scale = D**-0.5
    kf, vf = k.float(), v.float()
    key_block = torch.arange(L, device=q.device) // blkk  # [L]
    out = torch.empty(B, H, L, D, dtype=torch.float32, device=q.device)
    for i in range(block_map.shape[2]):
        rows = slice(i * blkq, min(L, (i + 1) * blkq))
        s = (q[:, :, rows].float() @ kf.transpose(-1, -2)) * scale  # [B, H, r, L]
        allowed = block_map[:, :, i, :][..., key_block]  # [B, H, L]
        s = s.masked_fill(~allowed[:, :, None, :], float("-inf"))
        out[:, :, rows] = torch.softmax(s, dim=-1) @ vf
    return out


def linear_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Linear branch over all keys, before proj_l; q, k, v: [B, H, L, D] -> float32 [B, H, L, D]."""
    phi_q = torch.softmax(q.float(), dim=-1)
    phi_k = torch.softmax(k.float(), dim=-1)
    kv = phi_k.transpose(-1, -2) @ v.float()  # [B, H, D, D]
    k_sum = phi_k.sum(dim=2)  # [B, H, D]
    denom = 1e-5 + (phi_q * k_sum[:, :, None, :]).sum(-1, keepdim=True)  # eps from SLA/core.py
    return (phi_q @ kv) / denom


def sla_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    proj_weight: torch.Tensor, proj_bias: torch.Tensor | None, topk: float,
    blkq: int = BLKQ, blkk: int = BLKK, return_parts: bool = False,
):
    """Plain-torch SLA.  q, k, v: [B, L, H, D] (after RoPE) -> [B, L, H, D] in q's dtype."""
    qh, kh, vh = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, L, D]
    block_map = sla_block_map(qh, kh, topk, blkq, blkk)
    o_sparse = sparse_attention_reference(qh, kh, vh, block_map, blkq, blkk)
    o_lin = linear_attention_reference(qh, kh, vh)
    o_lin = F.linear(o_lin, proj_weight.float(), None if proj_bias is None else proj_bias.float())
    out = (o_sparse + o_lin).to(q.dtype).transpose(1, 2)
    if return_parts:
        return out, {"block_map": block_map, "o_sparse": o_sparse, "o_linear": o_lin,
                     "block_scores": sla_block_scores(qh, kh, blkq, blkk)}
    return out


# ----------------------------------------------------------------------------------------
# Triton kernels (defined only where triton imports; compiled on first launch).
# ----------------------------------------------------------------------------------------

if HAS_TRITON:

    @triton.jit
    def _sla_kv_kernel(
        K, V, KV_PART, KS_PART,
        stride_b, stride_l, stride_h,
        H, L, ROWS_PER_PROG,
        HEAD_DIM: tl.constexpr, BLOCK_L: tl.constexpr,
    ):
        """Partial linear-branch sums over one chunk of the sequence for one (batch, head):
        KV_PART[bh, c] = phi(k)^T v  [D, D] and KS_PART[bh, c] = sum_rows phi(k)  [D] (float32)."""
        pid_c = tl.program_id(0)
        pid_bh = tl.program_id(1)
        num_c = tl.num_programs(0)
        b = pid_bh // H
        h = pid_bh % H
        base = b.to(tl.int64) * stride_b + h * stride_h
        offs_d = tl.arange(0, HEAD_DIM)
        offs_l = tl.arange(0, BLOCK_L)
        start = pid_c * ROWS_PER_PROG
        stop = tl.minimum(start + ROWS_PER_PROG, L)
        acc = tl.zeros((HEAD_DIM, HEAD_DIM), dtype=tl.float32)
        ks = tl.zeros((HEAD_DIM,), dtype=tl.float32)
        for r in range(start, stop, BLOCK_L):
            rows = r + offs_l
            valid = rows < stop
            ptr = base + rows.to(tl.int64)[:, None] * stride_l + offs_d[None, :]
            k = tl.load(K + ptr, mask=valid[:, None], other=0.0).to(tl.float32)
            v = tl.load(V + ptr, mask=valid[:, None], other=0.0)
            e = tl.exp(k - tl.max(k, axis=1)[:, None])
            phi = e / tl.sum(e, axis=1)[:, None]
            phi = tl.where(valid[:, None], phi, 0.0)
            ks += tl.sum(phi, axis=0)
            # bf16 operands, fp32 accumulation: rounding errors of phi average out over L.
            acc = tl.dot(tl.trans(phi.to(v.dtype)), v, acc)
        part = pid_bh * num_c + pid_c
        dd = offs_d[:, None] * HEAD_DIM + offs_d[None, :]
        tl.store(KV_PART + part.to(tl.int64) * HEAD_DIM * HEAD_DIM + dd, acc)
        tl.store(KS_PART + part.to(tl.int64) * HEAD_DIM + offs_d, ks)

    @triton.jit
    def _pool_blocks_kernel(
        X, P, stride_b, stride_l, stride_h, H, L, NB,
        HEAD_DIM: tl.constexpr, BLK: tl.constexpr,
    ):
        """P[bh, n] = mean of rows [n*BLK, min(L, (n+1)*BLK)) of x[b, :, h, :] (float32)."""
        pid_n = tl.program_id(0)
        pid_bh = tl.program_id(1)
        b = pid_bh // H
        h = pid_bh % H
        base = b.to(tl.int64) * stride_b + h * stride_h
        rows = pid_n * BLK + tl.arange(0, BLK)
        offs_d = tl.arange(0, HEAD_DIM)
        valid = rows < L
        x = tl.load(X + base + rows.to(tl.int64)[:, None] * stride_l + offs_d[None, :],
                    mask=valid[:, None], other=0.0).to(tl.float32)
        cnt = tl.minimum(L - pid_n * BLK, BLK).to(tl.float32)
        tl.store(P + (pid_bh.to(tl.int64) * NB + pid_n) * HEAD_DIM + offs_d, tl.sum(x, axis=0) / cnt)

    @triton.jit
    def _pool_rows4(X, base, stride_l, rows, L, mean, offs_d, SUB_MEAN: tl.constexpr):
        """Rows ``rows`` (4 of them) of x as float32 [4, D]; rows past L read as 0 (the reference's
        zero padding, applied after smooth-k)."""
        valid = rows < L
        x = tl.load(X + base + rows.to(tl.int64)[:, None] * stride_l + offs_d[None, :],
                    mask=valid[:, None], other=0.0).to(tl.float32)
        if SUB_MEAN:
            x = tl.where(valid[:, None], x - mean[None, :], 0.0)
        return x

    @triton.jit
    def _pool_exact_kernel(
        X, MEAN, P, stride_b, stride_l, stride_h, H, L, NB,
        HEAD_DIM: tl.constexpr, BLK: tl.constexpr, SUB_MEAN: tl.constexpr,
    ):
        """P[bh, n] = (sum of rows of block n of x[b, :, h, :] (- MEAN[bh])) / count, rounded to P's dtype.

        The fp32 sum replays torch's CUDA reduction of the reference's padded [.., BLK, D] float32
        view over its BLK axis (Reduce.cuh for BLK in {64, 128}, D = 128 outputs per row: 4 warps
        split the rows, warp y takes rows y, y+4, ...; each thread keeps vt0 = 4 accumulators,
        accumulator i takes rows 16m + 4i + y in order of m; the four are combined as
        ((a0 + a1) + a2) + a3; the warps as (w0 + w2) + (w1 + w3)), so the bf16 means -- and the
        block map -- are bit-identical to :func:`sla_block_map`'s.  No multiplies: no FMA contraction;
        the division is IEEE round-to-nearest as torch's."""
        pid_n = tl.program_id(0)
        pid_bh = tl.program_id(1)
        b = pid_bh // H
        h = pid_bh % H
        base = b.to(tl.int64) * stride_b + h * stride_h
        offs_d = tl.arange(0, HEAD_DIM)
        offs_y = tl.arange(0, 4)
        mean = tl.zeros((HEAD_DIM,), dtype=tl.float32)
        if SUB_MEAN:
            mean = tl.load(MEAN + pid_bh * HEAD_DIM + offs_d)
        row0 = pid_n * BLK
        a0 = tl.zeros((4, HEAD_DIM), dtype=tl.float32)  # [warp y, D]
        a1 = tl.zeros((4, HEAD_DIM), dtype=tl.float32)
        a2 = tl.zeros((4, HEAD_DIM), dtype=tl.float32)
        a3 = tl.zeros((4, HEAD_DIM), dtype=tl.float32)
        for m in tl.static_range(BLK // 16):
            r = row0 + 16 * m + offs_y
            a0 += _pool_rows4(X, base, stride_l, r, L, mean, offs_d, SUB_MEAN)
            a1 += _pool_rows4(X, base, stride_l, r + 4, L, mean, offs_d, SUB_MEAN)
            a2 += _pool_rows4(X, base, stride_l, r + 8, L, mean, offs_d, SUB_MEAN)
            a3 += _pool_rows4(X, base, stride_l, r + 12, L, mean, offs_d, SUB_MEAN)
        t = ((a0 + a1) + a2) + a3  # [4, D]: one partial per warp
        t = tl.sum(tl.reshape(t, (2, 2, HEAD_DIM)), axis=0)  # [w0 + w2, w1 + w3] (a sum of two: exact order)
        s = tl.sum(t, axis=0)  # (w0 + w2) + (w1 + w3)
        cnt = tl.minimum(L - row0, BLK).to(tl.float32)
        tl.store(P + (pid_bh.to(tl.int64) * NB + pid_n) * HEAD_DIM + offs_d,
                 tl.div_rn(s, cnt).to(P.dtype.element_ty))

    @triton.jit
    def _topk_rows_kernel(S, IDX, NK, N, BLOCK: tl.constexpr):
        """IDX[row] = the N largest of the NK scores S[row] (any float dtype), as int32 indices in
        ascending order -- the set ``torch.topk`` picks on CUDA: values ordered by their radix
        keys (so +0.0 ranks above -0.0) and, among values equal to the N-th largest, the lowest
        indices first."""
        row = tl.program_id(0)
        offs = tl.arange(0, BLOCK)
        valid = offs < NK
        x = tl.load(S + row.to(tl.int64) * NK + offs, mask=valid, other=0.0).to(tl.float32)
        bits = x.to(tl.int32, bitcast=True)
        key = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # signed int order == radix order
        key = tl.where(valid, key, -2147483648)  # padding ranks below every real value
        kth = tl.sum(tl.where(offs == N - 1, tl.sort(key, descending=True), 0))
        above = key > kth
        tie = valid & (key == kth)
        take = above | (tie & (tl.cumsum(tie.to(tl.int32), 0) <= N - tl.sum(above.to(tl.int32))))
        pos = tl.cumsum(take.to(tl.int32), 0) - 1
        tl.store(IDX + row.to(tl.int64) * N + pos, offs, mask=take)

    @triton.jit
    def _quant_blocks_kernel(
        X, XQ, XS, MEAN,
        stride_b, stride_l, stride_h,
        H, L, NB,
        HEAD_DIM: tl.constexpr, BLK: tl.constexpr, SUB_MEAN: tl.constexpr,
    ):
        """int8 per (batch, head, block of BLK rows): scale = amax / 127 (SageSLA's q/k rule).
        XQ has X's [B, L, H, D] layout; XS is [B*H, NB] float32. With SUB_MEAN, x - MEAN[bh]."""
        pid_n = tl.program_id(0)
        pid_bh = tl.program_id(1)
        b = pid_bh // H
        h = pid_bh % H
        base = b.to(tl.int64) * stride_b + h * stride_h
        rows = pid_n * BLK + tl.arange(0, BLK)
        offs_d = tl.arange(0, HEAD_DIM)
        valid = rows < L
        ptr = base + rows.to(tl.int64)[:, None] * stride_l + offs_d[None, :]
        x = tl.load(X + ptr, mask=valid[:, None], other=0.0).to(tl.float32)
        if SUB_MEAN:
            x = x - tl.load(MEAN + pid_bh * HEAD_DIM + offs_d)[None, :]
            x = tl.where(valid[:, None], x, 0.0)
        amax = tl.maximum(tl.max(tl.max(tl.abs(x), axis=1), axis=0), 1e-8)
        q = libdevice.rint(x * (127.0 / amax))
        q = tl.minimum(tl.maximum(q, -127.0), 127.0)
        tl.store(XQ + ptr, q.to(tl.int8), mask=valid[:, None])
        tl.store(XS + pid_bh * NB + pid_n, amax / 127.0)

    @triton.jit
    def _linear_branch(q, KVW, KSUM, BIAS, pid_bh, HEAD_DIM: tl.constexpr, LIN_BF16: tl.constexpr):
        """The linear branch for a tile of query rows q [BLOCK_M, D], float32:
        phi(q) @ KVW[bh] / (1e-5 + phi(q) . KSUM[bh]) + bias, phi = softmax over the head dim."""
        offs_d = tl.arange(0, HEAD_DIM)
        qf = q.to(tl.float32)
        e = tl.exp(qf - tl.max(qf, axis=1)[:, None])
        phi = e / tl.sum(e, axis=1)[:, None]
        dd = offs_d[:, None] * HEAD_DIM + offs_d[None, :]
        kvw = tl.load(KVW + pid_bh.to(tl.int64) * HEAD_DIM * HEAD_DIM + dd)
        ksum = tl.load(KSUM + pid_bh * HEAD_DIM + offs_d)
        if LIN_BF16:
            num = tl.dot(phi.to(tl.bfloat16), kvw.to(tl.bfloat16))
        else:
            num = tl.dot(phi, kvw)
        den = 1e-5 + tl.sum(phi * ksum[None, :], axis=1)
        return num / den[:, None] + tl.load(BIAS + offs_d)[None, :]

    @triton.jit
    def _sla_fwd_kernel(
        Q, K, V, O, IDX, KVW, KSUM, BIAS, QI, KI, QSC, KSC,
        stride_b, stride_l, stride_h, stride_ob, stride_ol, stride_oh,
        H, L, NQ, NK, NSEL, qk_scale,
        HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_KB: tl.constexpr,
        KB_PER_ITER: tl.constexpr, LINEAR: tl.constexpr, INT8_QK: tl.constexpr,
        LIN_BF16: tl.constexpr,
    ):
        """One program = one query block (BLOCK_M rows) of one (batch, head).

        Sparse branch: online-softmax attention over the NSEL key blocks listed in
        IDX[bh, qblock, :], KB_PER_ITER blocks gathered into one key tile per step; keys past L
        are masked.  Epilogue (LINEAR): + phi(q) @ KVW[bh] / (1e-5 + phi(q) . KSUM[bh]) + bias.
        qk_scale = D^-0.5 * log2(e) (exp2 softmax)."""
        pid_m = tl.program_id(0)
        pid_bh = tl.program_id(1)
        b = pid_bh // H
        h = pid_bh % H
        base = b.to(tl.int64) * stride_b + h * stride_h
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, HEAD_DIM)
        mask_m = offs_m < L
        q_ptr = base + offs_m.to(tl.int64)[:, None] * stride_l + offs_d[None, :]
        if INT8_QK:
            qi = tl.load(QI + q_ptr, mask=mask_m[:, None], other=0)
            q_scale = tl.load(QSC + pid_bh * NQ + pid_m) * qk_scale
        else:
            q = tl.load(Q + q_ptr, mask=mask_m[:, None], other=0.0)

        BLOCK_N: tl.constexpr = BLOCK_KB * KB_PER_ITER
        offs_n = tl.arange(0, BLOCK_N)
        sub = offs_n // BLOCK_KB
        within = offs_n % BLOCK_KB
        m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
        l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
        acc = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
        idx_base = IDX + (pid_bh.to(tl.int64) * NQ + pid_m) * NSEL
        for j in range(0, NSEL, KB_PER_ITER):
            sel = j + sub
            sel_ok = sel < NSEL
            kb = tl.load(idx_base + sel, mask=sel_ok, other=0)
            rows = kb * BLOCK_KB + within
            valid = sel_ok & (rows < L)
            kv_ptr = base + rows.to(tl.int64)[:, None] * stride_l + offs_d[None, :]
            if INT8_QK:
                ki = tl.load(KI + kv_ptr, mask=valid[:, None], other=0)
                k_scale = tl.load(KSC + pid_bh * NK + kb, mask=sel_ok, other=0.0)
                s = tl.dot(qi, tl.trans(ki), out_dtype=tl.int32).to(tl.float32)
                s = s * (q_scale * k_scale)[None, :]
            else:
                k = tl.load(K + kv_ptr, mask=valid[:, None], other=0.0)
                s = tl.dot(q, tl.trans(k)) * qk_scale
            s = tl.where(valid[None, :], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            p = tl.math.exp2(s - m_new[:, None])
            alpha = tl.math.exp2(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, axis=1)
            v = tl.load(V + kv_ptr, mask=valid[:, None], other=0.0)
            acc = acc * alpha[:, None]
            acc = tl.dot(p.to(v.dtype), v, acc)
            m_i = m_new
        out = acc / l_i[:, None]

        if LINEAR:
            if INT8_QK:
                q = tl.load(Q + q_ptr, mask=mask_m[:, None], other=0.0)
            out += _linear_branch(q, KVW, KSUM, BIAS, pid_bh, HEAD_DIM, LIN_BF16)
        o_ptr = b.to(tl.int64) * stride_ob + h * stride_oh + offs_m.to(tl.int64)[:, None] * stride_ol + offs_d[None, :]
        tl.store(O + o_ptr, out.to(O.dtype.element_ty), mask=mask_m[:, None])

    @triton.jit
    def _tma_block_step(q, acc, l_i, m_i, k_desc, v_desc, KSC, ksc_base, row0, col, vrow, kb, L, scale,
                        BLOCK_KB: tl.constexpr, INT8_QK: tl.constexpr, FP8_PV: tl.constexpr,
                        MASK: tl.constexpr, FOLD: tl.constexpr):
        """One key block of the online softmax: logits, running max/sum update and P·V.  FOLD:
        the scale (int8: times the block's k scale) goes into exp2's multiply-add instead of a
        separate multiply of the logits."""
        k = k_desc.load([row0 + kb * BLOCK_KB, col])
        if INT8_QK:
            s = tl.dot(q, tl.trans(k), out_dtype=tl.int32).to(tl.float32)
            scale = scale * tl.load(KSC + ksc_base + kb)
        else:
            s = tl.dot(q, tl.trans(k))
        if not FOLD:
            s = s * scale
        if MASK:  # keys past L (only the last key block of a sequence has any)
            keys = kb * BLOCK_KB + tl.arange(0, BLOCK_KB)
            s = tl.where((keys < L)[None, :], s, float("-inf"))
        if FOLD:
            m_new = tl.maximum(m_i, tl.max(s, axis=1) * scale)
            p = tl.math.exp2(s * scale - m_new[:, None])
        else:
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            p = tl.math.exp2(s - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None]
        if FP8_PV:
            # V^T tile [D, BLOCK_KB] (fp8, per-channel scaled); P scaled by 448 into e4m3's range.
            vt = v_desc.load([vrow, kb * BLOCK_KB])
            acc = tl.dot((p * 448.0).to(tl.float8e4nv), tl.trans(vt), acc)
        else:
            v = v_desc.load([row0 + kb * BLOCK_KB, col])
            acc = tl.dot(p.to(v.dtype), v, acc)
        return acc, l_i, m_new

    @triton.jit
    def _sla_fwd_tma_kernel(
        q_desc, k_desc, v_desc, Q, O, IDX, KVW, KSUM, BIAS, QSC, KSC, VSC,
        stride_b, stride_l, stride_h, stride_ob, stride_ol, stride_oh,
        H, L, NQ, NK, NSEL, qk_scale,
        HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_KB: tl.constexpr,
        LINEAR: tl.constexpr, INT8_QK: tl.constexpr,
        FP8_PV: tl.constexpr, LIN_BF16: tl.constexpr, MASK_TAIL: tl.constexpr,
        TAIL_ONLY: tl.constexpr, FOLD: tl.constexpr,
    ):
        """Hopper version of :func:`_sla_fwd_kernel`: q, k, v tiles come through the tensor-copy
        engine (TMA descriptors over the [B*L, H*D] row-major view; a selected key block is a
        64-row box at a run-time row), so the gathered loads pipeline like dense ones.

        The selected blocks are sorted, so only the last one can hold keys past L: with TAIL_ONLY
        the loop runs unmasked and (MASK_TAIL) the last block gets the mask; without, every block
        is masked (MASK_TAIL).
        INT8_QK: q_desc/k_desc hold the int8 copies, Q the bf16 q (the linear branch's phi).
        FP8_PV: v_desc is V^T in e4m3 per (batch, head): a [B*H*D, L_pad] view, scaled per
        channel by VSC[bh, d]."""
        pid_m = tl.program_id(0)
        pid_bh = tl.program_id(1)
        b = pid_bh // H
        h = pid_bh % H
        row0 = b * L
        col = h * HEAD_DIM
        q = q_desc.load([row0 + pid_m * BLOCK_M, col])
        scale = qk_scale
        if INT8_QK:
            scale = qk_scale * tl.load(QSC + pid_bh * NQ + pid_m)
        ksc_base = pid_bh * NK
        vrow = pid_bh * HEAD_DIM  # FP8_PV: this head's first row in V^T's [B*H*D, L_pad] view
        m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
        l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
        acc = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
        idx_base = IDX + (pid_bh.to(tl.int64) * NQ + pid_m) * NSEL
        split_tail: tl.constexpr = MASK_TAIL and TAIL_ONLY
        n_loop = NSEL - 1 if split_tail else NSEL
        for j in range(0, n_loop):
            kb = tl.load(idx_base + j)
            acc, l_i, m_i = _tma_block_step(q, acc, l_i, m_i, k_desc, v_desc, KSC, ksc_base, row0, col, vrow,
                                            kb, L, scale, BLOCK_KB, INT8_QK, FP8_PV, MASK_TAIL and not TAIL_ONLY,
                                            FOLD)
        if split_tail:
            kb = tl.load(idx_base + NSEL - 1)
            acc, l_i, m_i = _tma_block_step(q, acc, l_i, m_i, k_desc, v_desc, KSC, ksc_base, row0, col, vrow,
                                            kb, L, scale, BLOCK_KB, INT8_QK, FP8_PV, True, FOLD)
        if FP8_PV:
            vsc = tl.load(VSC + pid_bh * HEAD_DIM + tl.arange(0, HEAD_DIM))
            out = acc * (vsc / (448.0 * 448.0))[None, :] / l_i[:, None]  # undo both 448 scalings
        else:
            out = acc / l_i[:, None]

        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, HEAD_DIM)
        mask_m = offs_m < L
        if LINEAR:
            base = b.to(tl.int64) * stride_b + h * stride_h
            qb = tl.load(Q + base + offs_m.to(tl.int64)[:, None] * stride_l + offs_d[None, :],
                         mask=mask_m[:, None], other=0.0)
            out += _linear_branch(qb, KVW, KSUM, BIAS, pid_bh, HEAD_DIM, LIN_BF16)
        o_ptr = b.to(tl.int64) * stride_ob + h * stride_oh + offs_m.to(tl.int64)[:, None] * stride_ol + offs_d[None, :]
        tl.store(O + o_ptr, out.to(O.dtype.element_ty), mask=mask_m[:, None])

    @triton.jit
    def _quant_vt_fp8_kernel(
        V, VT, VSC, stride_b, stride_l, stride_h, H, L, LP,
        HEAD_DIM: tl.constexpr, BLOCK_L: tl.constexpr,
    ):
        """VT[bh, d, l] = e4m3(v[b, l, h, d] * 448 / amax_d) with VSC[bh, d] = amax over the sequence of
        |v[.., d]| (per channel, so the scale leaves the P·V sum: out[:, d] = VSC[d]/448 * (P @ VT^T)[:, d])."""
        pid_l = tl.program_id(0)
        pid_bh = tl.program_id(1)
        b = pid_bh // H
        h = pid_bh % H
        offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
        offs_d = tl.arange(0, HEAD_DIM)
        x = tl.load(V + b.to(tl.int64) * stride_b + h * stride_h + offs_l.to(tl.int64)[:, None] * stride_l
                    + offs_d[None, :], mask=(offs_l < L)[:, None], other=0.0).to(tl.float32)
        amax = tl.load(VSC + pid_bh * HEAD_DIM + offs_d)
        y = (x * (448.0 / tl.maximum(amax, 1e-20))[None, :]).to(tl.float8e4nv)
        dst = VT + pid_bh.to(tl.int64) * HEAD_DIM * LP + offs_d[None, :].to(tl.int64) * LP + offs_l[:, None]
        tl.store(dst, y, mask=(offs_l < LP)[:, None])


# ----------------------------------------------------------------------------------------
# Launchers.
# ----------------------------------------------------------------------------------------


def triton_usable(t: torch.Tensor) -> bool:
    """True when the Triton path can run on ``t``'s device (CUDA, triton importable, sm80+)."""
    # The kernels are forward-only: where autograd needs this tensor's gradient (training),
    # the reference runs.
    return HAS_TRITON and t.is_cuda and not (t.requires_grad and torch.is_grad_enabled()) and torch.cuda.get_device_capability(t.device)[0] >= 8


# Block map of the fast path:
# "reference": the reference's own torch ops (pooling in fp32 torch reductions + torch.topk);
# "exact": Triton pooling that replays torch's CUDA summation order (_pool_exact_kernel), so the
#   pooled means, scores and map are bit-identical to sla_block_map's; k's mean over the sequence
#   stays the reference's torch op (the default: 0.49 ms instead of 1.79 ms at 12 x 32,760 x 128 on
#   an H200, 2026-11-22; bit-identical pooled values, scores and maps in tests/test_kernels_gpu.py,
#   and a bit-identical 1.3B DiT forward);
# "fast": Triton pooling in its own order (fp32 sums; 0.59 ms instead of 1.84 ms at
#   12 x 32,760 x 128 on an H100, but on 2026-11-22 one of 3,072 query-block rows picked a
#   different key block than the reference, a near-tie).
BLOCK_MAP = "exact"


def _pool_triton(x: torch.Tensor, blk: int) -> torch.Tensor:
    """Block means of x [B, L, H, D] -> float32 [B, H, ceil(L/blk), D] (last block: its rows)."""
    B, L, H, D = x.shape
    nb = triton.cdiv(L, blk)
    p = torch.empty(B, H, nb, D, device=x.device, dtype=torch.float32)
    _pool_blocks_kernel[(nb, B * H)](x, p, x.stride(0), x.stride(1), x.stride(2), H, L, nb,
                                     HEAD_DIM=D, BLK=blk, num_warps=4)
    return p


def _pool_exact_triton(x: torch.Tensor, blk: int, mean: torch.Tensor | None) -> torch.Tensor:
    """Block means of x [B, L, H, D] (minus ``mean`` [B, H, 1, D] float32) -> [B, H, nb, D] in x's
    dtype, bit-identical to ``_pool_blocks(x_h - mean, blk).to(x.dtype)`` on CUDA."""
    B, L, H, D = x.shape
    assert blk in (64, 128) and D == 128, (blk, D)  # the reduction shapes whose order we replay
    nb = triton.cdiv(L, blk)
    p = torch.empty(B, H, nb, D, device=x.device, dtype=x.dtype)
    m = mean.reshape(B * H, D).contiguous() if mean is not None else p
    _pool_exact_kernel[(nb, B * H)](x, m, p, x.stride(0), x.stride(1), x.stride(2), H, L, nb,
                                    HEAD_DIM=D, BLK=blk, SUB_MEAN=mean is not None, num_warps=2)
    return p


def block_scores_exact_triton(q: torch.Tensor, k: torch.Tensor, blkq: int = BLKQ, blkk: int = BLKK):
    """CUDA: (scores [B, H, nQ, nK], k mean float32 [B, H, 1, D], pooled q, pooled k) for q, k in
    [B, L, H, D]; the same values as ``_block_scores_and_mean`` on the transposed inputs."""
    kh = k.transpose(1, 2)
    # The reference's kh.float().mean(dim=2) with the cast inside the reduction instead of a float32
    # copy of k (200 MB written and read per 1.3B layer): the same bits (tests/test_kernels_gpu.py,
    # test_exact_pooling_bit_identical), 0.52 -> 0.33 ms per block map on an H100.
    k_mean = kh.mean(dim=2, keepdim=True, dtype=torch.float32)
    pq = _pool_exact_triton(q, blkq, None)
    pk = _pool_exact_triton(k, blkk, k_mean)
    return pq @ pk.transpose(-1, -2), k_mean, pq, pk


def sla_block_indices(q: torch.Tensor, k: torch.Tensor, topk: float, blkq: int = BLKQ, blkk: int = BLKK,
                      mode: str | None = None):
    """Selected key blocks per query block, for q, k [B, L, H, D].

    Returns (idx int32 [B, H, nQ, n] ascending, k mean float32 [B, H, 1, D]).  ``mode`` (default
    :data:`BLOCK_MAP`; always "reference" off CUDA): "reference" and "exact" mark exactly the
    blocks of :func:`sla_block_map`; "fast" pools in Triton in its own order and applies smooth-k
    to the pooled means (mean(k_blk) - mean(k) == mean(k_blk - mean(k))).
    """
    mode = BLOCK_MAP if mode is None else mode
    if not triton_usable(q) or q.shape[-1] not in (64, 128) or blkq not in (64, 128) or blkk not in (64, 128):
        mode = "reference"
    if mode == "exact" and q.shape[-1] != 128:  # the replayed reduction order assumes D = 128
        mode = "reference"
    if mode == "reference":
        qh, kh = q.transpose(1, 2), k.transpose(1, 2)
        scores, k_mean = _block_scores_and_mean(qh, kh, blkq, blkk)
    elif mode == "exact":
        scores, k_mean, _, _ = block_scores_exact_triton(q, k, blkq, blkk)
    elif mode == "fast":
        L = q.shape[1]
        pq = _pool_triton(q, blkq)
        pk = _pool_triton(k, blkk)  # [B, H, nK, D] raw block means
        counts = torch.full((pk.shape[2],), float(blkk), device=q.device)
        counts[-1] = L - (pk.shape[2] - 1) * blkk
        k_mean = (pk * counts[:, None]).sum(dim=2, keepdim=True) / L
        scores = pq.to(q.dtype) @ (pk - k_mean).to(q.dtype).transpose(-1, -2)
    else:
        raise ValueError(f"block map mode {mode!r}: 'reference', 'exact' or 'fast'")
    n = selected_blocks(topk, scores.shape[-1])
    # Ascending indices (sequential-ish k reads; the TMA kernel relies on the last key block
    # coming last).  CUDA: one Triton pass that selects and orders them; else the reference's
    # topk (sorted=False selects the same set: sorting only orders it) and a sort.
    if triton_usable(scores) and scores.shape[-1] <= 4096:
        return topk_indices_triton(scores, n), k_mean
    idx = scores.float().topk(n, dim=-1, sorted=False).indices
    idx = idx.to(torch.int32).sort(dim=-1).values.contiguous()
    return idx, k_mean


def topk_indices_triton(scores: torch.Tensor, n: int) -> torch.Tensor:
    """Ascending int32 indices [..., n] of the n largest of scores [..., K] along the last dim:
    the set torch.topk selects on CUDA (see _topk_rows_kernel; tests/test_kernels_gpu.py checks it
    against torch.topk, ties included)."""
    K = scores.shape[-1]
    s2 = scores.reshape(-1, K).contiguous()
    idx = torch.empty(s2.shape[0], n, device=scores.device, dtype=torch.int32)
    _topk_rows_kernel[(s2.shape[0],)](s2, idx, K, n, BLOCK=triton.next_power_of_2(K), num_warps=4)
    return idx.view(*scores.shape[:-1], n)


# Sequence rows per program of the linear-branch state kernel, and its warps: 512 rows, 4 warps
# was the best of 6 variants on an H100 (2026-11-22, bench/kernels.py --only kvstate: 0.201 ms
# vs 0.218 ms for 2048 rows at 1 x 32,760 x 12 x 128).
KV_CONFIG = (512, 4)


def _linear_branch_state(k, v, proj_weight, config: tuple[int, int] | None = None):
    """KVW = (phi(k)^T v) @ W^T  [B*H, D, D] and KSUM = sum phi(k)  [B*H, D], float32."""
    chunk_rows, warps = config or KV_CONFIG
    B, L, H, D = k.shape
    n_c = triton.cdiv(L, chunk_rows)
    kv_part = torch.empty(B * H, n_c, D, D, device=k.device, dtype=torch.float32)
    ks_part = torch.empty(B * H, n_c, D, device=k.device, dtype=torch.float32)
    _sla_kv_kernel[(n_c, B * H)](
        k, v, kv_part, ks_part, k.stride(0), k.stride(1), k.stride(2), H, L, chunk_rows,
        HEAD_DIM=D, BLOCK_L=64, num_warps=warps, num_stages=2,
    )
    kv = kv_part.sum(dim=1)  # [B*H, D, D]
    ksum = ks_part.sum(dim=1)  # [B*H, D]
    kvw = torch.matmul(kv, proj_weight.float().t()).contiguous()  # proj_l folded in
    return kvw, ksum.contiguous()


def _quantize_blocks(x: torch.Tensor, blk: int, mean: torch.Tensor | None):
    """int8 copy of x [B, L, H, D] with one scale per (batch, head, blk rows); x - mean first."""
    B, L, H, D = x.shape
    nb = triton.cdiv(L, blk)
    # The kernels index xq with x's strides (x may be a q/k slice of a fused [B, L, 3C] tensor).
    xq = torch.empty_strided(x.shape, x.stride(), device=x.device, dtype=torch.int8)
    xs = torch.empty(B * H, nb, device=x.device, dtype=torch.float32)
    _quant_blocks_kernel[(nb, B * H)](
        x, xq, xs, mean if mean is not None else xs, x.stride(0), x.stride(1), x.stride(2),
        H, L, nb, HEAD_DIM=D, BLK=blk, SUB_MEAN=mean is not None, num_warps=4,
    )
    return xq, xs


# Default launch configuration of the fused forward: (key blocks per step, warps, stages).
FWD_CONFIG = {"sla": (2, 8, 2), "sagesla": (1, 4, 3)}  # best of the variants timed on an H100


def _sla_fwd_launch(q, k, v, idx, kvw, ksum, bias, qi, ki, qsc, ksc, *, linear: bool, int8_qk: bool,
                    kb_per_iter: int, num_warps: int, num_stages: int,
                    blocks: tuple[int, int] = (BLKQ, BLKK)) -> torch.Tensor:
    """Launch the fused forward on prepared inputs (block indices, linear state, int8 copies);
    ``blocks`` = (query rows, key rows) of a block, as the inputs were prepared with."""
    blkq, blkk = blocks
    B, L, H, D = q.shape
    nq, nsel = idx.shape[2], idx.shape[3]
    out = torch.empty(q.shape, device=q.device, dtype=q.dtype)  # contiguous [B, L, H, D]
    dummy = out
    _sla_fwd_kernel[(nq, B * H)](
        q, k, v, out, idx,
        kvw if linear else dummy, ksum if linear else dummy, bias if linear else dummy,
        qi if int8_qk else q, ki if int8_qk else k, qsc if int8_qk else dummy, ksc if int8_qk else dummy,
        q.stride(0), q.stride(1), q.stride(2), out.stride(0), out.stride(1), out.stride(2),
        H, L, nq, triton.cdiv(L, blkk), nsel,
        D**-0.5 * 1.4426950408889634,
        HEAD_DIM=D, BLOCK_M=blkq, BLOCK_KB=blkk, KB_PER_ITER=kb_per_iter,
        LINEAR=linear, INT8_QK=int8_qk, LIN_BF16=q.dtype != torch.float32,
        num_warps=num_warps, num_stages=num_stages,
    )
    return out


# Hopper launch configuration of the TMA forward: (warps, stages, mask only the last selected
# block, fold the logit scale into exp2's multiply-add).  The best of 16 variants each on an H100
# (2026-11-22, bench/kernels.py --quick --variants, 1 x 32,760 x 12 x 128, top-k 0.1): SLA 1.65 ms
# (8 warps, masking every block and a separate scale multiply: the split tail costs 8 warps
# 30%); SageSLA 1.58 ms (4 warps, split tail, folded scale).  The pointer kernel's best: 2.13 ms.
# SageSLA with the H100/H200 blocks (64 query x 128 key rows), best of 8 variants (2026-11-22,
# runs/seed/s9d.py, same shape): 1.274 ms (4 warps, every block masked, folded scale) against 1.338
# with the 128 x 64 choice -- and 1.60 ms for the 128 x 64 blocks themselves.
TMA_CONFIG = {"sla": (8, 3, False, False), "sagesla": (4, 2, True, True), "sagesla-64x128": (4, 2, False, True)}


def tma_config(int8_qk: bool, blocks: tuple[int, int]) -> tuple[int, int, bool, bool]:
    """The :data:`TMA_CONFIG` entry for SLA / SageSLA with these (query rows, key rows) blocks."""
    tag = "sagesla" if int8_qk else "sla"
    if tuple(blocks) != (BLKQ, BLKK):
        tag = f"{tag}-{blocks[0]}x{blocks[1]}"
    return TMA_CONFIG.get(tag, TMA_CONFIG["sagesla" if int8_qk else "sla"])
# SageSLA's P·V on the TMA path: "bf16", or "fp8" (e4m3 P and per-channel-scaled V^T, fp32
# accumulation).  fp8 measured no faster on an H100 (the kernel is bound by the softmax's
# elementwise work, not by the tensor cores) and doubles the error (rel L2 1.8e-2 vs 9.4e-3 at
# the 1.3B shape), so bf16 is the default.
SAGE_PV = "bf16"


def tma_usable(*ts: torch.Tensor) -> bool:
    """True when the TMA forward can read these [B, L, H, D] tensors: a Hopper-class GPU, Triton's
    host descriptors, and a layout whose rows form one [B*L, H*D] row-major view (contiguous, or
    q/k/v slices of a fused [B, L, 3C] projection) with 16-byte aligned rows and base."""
    if TensorDescriptor is None or not HAS_TRITON or not ts[0].is_cuda:
        return False
    if torch.cuda.get_device_capability(ts[0].device)[0] < 9:
        return False
    for t in ts:
        B, L, H, D = t.shape
        st = t.stride()
        if st[3] != 1 or st[2] != D or (B > 1 and st[0] != L * st[1]):
            return False
        if (st[1] * t.element_size()) % 16 or t.data_ptr() % 16:
            return False
    return True


def _rows_desc(t: torch.Tensor, block_rows: int):
    """TMA descriptor over t [B, L, H, D] seen as [B*L, H*D] rows, boxes of [block_rows, D]."""
    B, L, H, D = t.shape
    return TensorDescriptor(t, [B * L, H * D], [t.stride(1), 1], [block_rows, D])


def _quantize_vt_fp8(v: torch.Tensor):
    """(V^T in e4m3 [B*H, D, L_pad] scaled to 448 per channel, amax [B*H, D] float32), L_pad = L
    rounded up to 16 (TMA row pitch); padded columns are 0."""
    B, L, H, D = v.shape
    lp = -(-L // 16) * 16
    amax = v.abs().amax(dim=1).float().reshape(B * H, D).contiguous()
    vt = torch.empty(B * H, D, lp, device=v.device, dtype=torch.float8_e4m3fn)
    block_l = 64
    _quant_vt_fp8_kernel[(triton.cdiv(lp, block_l), B * H)](
        v, vt, amax, v.stride(0), v.stride(1), v.stride(2), H, L, lp,
        HEAD_DIM=D, BLOCK_L=block_l, num_warps=4,
    )
    return vt, amax


def _sla_fwd_tma_launch(q, k, v, idx, kvw, ksum, bias, qi, ki, qsc, ksc, vt=None, vsc=None, *,
                        linear: bool, int8_qk: bool, config: tuple[int, int, bool, bool] | None = None,
                        blocks: tuple[int, int] = (BLKQ, BLKK)) -> torch.Tensor:
    """Launch the TMA forward (Hopper) on prepared inputs; ``vt``/``vsc`` select fp8 P·V;
    ``config`` as in :data:`TMA_CONFIG` (default: its entry for SLA / SageSLA); ``blocks`` as in
    :func:`_sla_fwd_launch`."""
    num_warps, num_stages, tail_only, fold = config or tma_config(int8_qk, blocks)
    blkq, blkk = blocks
    B, L, H, D = q.shape
    nq, nsel = idx.shape[2], idx.shape[3]
    out = torch.empty(q.shape, device=q.device, dtype=q.dtype)
    fp8_pv = vt is not None
    q_desc = _rows_desc(qi if int8_qk else q, blkq)
    k_desc = _rows_desc(ki if int8_qk else k, blkk)
    if fp8_pv:
        v_desc = TensorDescriptor(vt, [vt.shape[0] * D, vt.shape[2]], [vt.shape[2], 1], [D, blkk])
    else:
        v_desc = _rows_desc(v, blkk)
    dummy = out
    _sla_fwd_tma_kernel[(nq, B * H)](
        q_desc, k_desc, v_desc, q, out, idx,
        kvw if linear else dummy, ksum if linear else dummy, bias if linear else dummy,
        qsc if int8_qk else dummy, ksc if int8_qk else dummy, vsc if fp8_pv else dummy,
        q.stride(0), q.stride(1), q.stride(2), out.stride(0), out.stride(1), out.stride(2),
        H, L, nq, triton.cdiv(L, blkk), nsel,
        D**-0.5 * 1.4426950408889634,
        HEAD_DIM=D, BLOCK_M=blkq, BLOCK_KB=blkk,
        LINEAR=linear, INT8_QK=int8_qk, FP8_PV=fp8_pv, LIN_BF16=q.dtype != torch.float32,
        MASK_TAIL=L % blkk != 0, TAIL_ONLY=tail_only, FOLD=fold, num_warps=num_warps, num_stages=num_stages,
    )
    return out


def _sla_prepare(q, k, v, proj_weight, proj_bias, topk, *, int8_qk: bool, linear: bool = True,
                 fp8_pv: bool = False, blocks: tuple[int, int] = (BLKQ, BLKK)):
    """Everything the fused forward reads besides q, k, v: block indices, linear state, int8 copies
    (and with ``fp8_pv`` the e4m3 V^T and its per-channel scales, for the TMA kernel), for blocks
    of ``blocks`` = (query rows, key rows)."""
    B, L, H, D = q.shape
    blkq, blkk = blocks
    idx, k_mean = sla_block_indices(q, k, topk, blkq, blkk)
    prep = {"idx": idx, "kvw": None, "ksum": None, "bias": None,
            "qi": None, "ki": None, "qsc": None, "ksc": None}
    if fp8_pv:
        prep["vt"], prep["vsc"] = _quantize_vt_fp8(v)
    if linear:
        prep["kvw"], prep["ksum"] = _linear_branch_state(k, v, proj_weight)
        prep["bias"] = (proj_bias.float() if proj_bias is not None
                        else torch.zeros(D, device=q.device, dtype=torch.float32)).contiguous()
    if int8_qk:
        prep["qi"], prep["qsc"] = _quantize_blocks(q, blkq, None)
        prep["ki"], prep["ksc"] = _quantize_blocks(k, blkk, k_mean.reshape(B * H, D).contiguous())
    return prep


# SageSLA's block shape (query rows, key rows): "arch" follows the reference (FORMATS.md section 4:
# TurboDiffusion's SageSLA pools q in 64-row and k in 128-row blocks on sm90, i.e. H100/H200, and
# 128/64 elsewhere), or a fixed (rows, rows) pair with each in {64, 128}.
SAGE_BLOCKS: str | tuple[int, int] = "arch"


def reference_sage_blocks(device) -> tuple[int, int]:
    """The reference's SageSLA (query rows, key rows) on ``device``: 64 x 128 on sm90, else 128 x 64."""
    if torch.device(device).type == "cuda" and torch.cuda.get_device_capability(device) == (9, 0):
        return (64, 128)
    return (BLKQ, BLKK)


def sage_blocks(device) -> tuple[int, int]:
    """SageSLA's (query rows, key rows) per block on ``device`` (see :data:`SAGE_BLOCKS`)."""
    return reference_sage_blocks(device) if SAGE_BLOCKS == "arch" else tuple(SAGE_BLOCKS)


def _sla_forward_triton(
    q, k, v, proj_weight, proj_bias, topk, *, int8_qk: bool = False, linear: bool = True,
    kb_per_iter: int | None = None, num_warps: int | None = None, num_stages: int | None = None,
    return_indices: bool = False, impl: str = "auto", pv: str | None = None,
    blocks: tuple[int, int] | None = None,
):
    """Fused SLA / SageSLA forward on CUDA; q, k, v [B, L, H, D] -> [B, L, H, D] in q's dtype.

    ``impl``: "tma" (Hopper descriptors), "ptr" (pointer gathers, any sm80+ GPU) or "auto" (TMA
    where :func:`tma_usable`).  ``pv`` (SageSLA only, TMA only): "fp8" or "bf16"; default
    :data:`SAGE_PV`.  ``blocks`` (query rows, key rows): default (128, 64) for SLA and
    :func:`sage_blocks` for SageSLA."""
    if blocks is None:
        blocks = sage_blocks(q.device) if int8_qk else (BLKQ, BLKK)
    if not (q.stride(-1) == 1 and q.stride() == k.stride() == v.stride()):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    if impl == "auto":
        impl = "tma" if tma_usable(q, k, v) else "ptr"
    tag = "sagesla" if int8_qk else "sla"
    if impl == "tma":
        fp8_pv = int8_qk and (pv or SAGE_PV) == "fp8"
        warps, stages, tail_only, fold = tma_config(int8_qk, blocks)
        prep = _sla_prepare(q, k, v, proj_weight, proj_bias, topk, int8_qk=int8_qk, linear=linear, fp8_pv=fp8_pv,
                            blocks=blocks)
        out = _sla_fwd_tma_launch(q, k, v, **prep, linear=linear, int8_qk=int8_qk,
                                  config=(num_warps or warps, num_stages or stages, tail_only, fold), blocks=blocks)
    else:
        kb, warps, stages = FWD_CONFIG[tag]
        prep = _sla_prepare(q, k, v, proj_weight, proj_bias, topk, int8_qk=int8_qk, linear=linear, blocks=blocks)
        out = _sla_fwd_launch(q, k, v, **prep, linear=linear, int8_qk=int8_qk, kb_per_iter=kb_per_iter or kb,
                              num_warps=num_warps or warps, num_stages=num_stages or stages, blocks=blocks)
    if return_indices:
        return out, prep["idx"]
    return out


def sla_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    proj_weight: torch.Tensor, proj_bias: torch.Tensor | None, topk: float,
) -> torch.Tensor:
    """SLA on [B, L, H, D] tensors; the fused Triton kernels on CUDA, the reference elsewhere."""
    if triton_usable(q) and q.dtype in (torch.bfloat16, torch.float16) and q.shape[-1] in (64, 128):
        return _sla_forward_triton(q, k, v, proj_weight, proj_bias, topk)
    return sla_reference(q, k, v, proj_weight, proj_bias, topk)


def sagesla_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    proj_weight: torch.Tensor, proj_bias: torch.Tensor | None, topk: float,
) -> torch.Tensor:
    """SageSLA (int8 Q·K^T, bf16 P·V) on CUDA; elsewhere the SLA reference (same function, exact),
    with SageSLA's blocks for the device (:func:`sage_blocks`: on the CPU SLA's own 128 x 64)."""
    if triton_usable(q) and q.dtype in (torch.bfloat16, torch.float16) and q.shape[-1] in (64, 128):
        return _sla_forward_triton(q, k, v, proj_weight, proj_bias, topk, int8_qk=True)
    blkq, blkk = sage_blocks(q.device)
    return sla_reference(q, k, v, proj_weight, proj_bias, topk, blkq, blkk)
