"""Wan DiT (Wan2.1 T2V and Wan2.2 I2V) as TurboDiffusion runs it.

Follows shared/reference/FORMATS.md section 2 (the reference's ``rcm/networks/wan2pt1.py`` and
``wan2pt2.py``, as modified by ``inference/modify_model.py``).  Module names equal the published
checkpoint keys, so loading (``engine.loading``) is a plain ``load_state_dict``.

Reading order: time sinusoid -> RoPE -> norms -> attention -> block -> head -> the model.

Dtypes: the weights may be bfloat16; as in the reference, the time embedding, the time
projection, every modulation vector and the head run in float32 (the reference wraps them in
``autocast(dtype=float32)``), while the residual stream and the block linears stay in the model
dtype.  On CPU in float32 everything is float32 and matches the fixtures.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.configs import DiTConfig
from engine.models.attention import AttnOp, dense_attention
from engine.models.int8_linear import Int8Linear
from kernels.int8 import int8_linear
from kernels.norms import layer_norm_modulate, residual_layer_norm, rms_norm, rms_norm_rope, triton_usable

DEFAULT_SLA_TOPK = 0.1  # reference CLI default --sla_topk (FORMATS.md section 4)
ROPE_THETA = 10000.0  # VideoRopePosition3DEmb, no NTK extrapolation
MAX_ROPE_HW = 128  # the reference's len_h = len_w = 128 (asserted there)


# ---------------------------------------------------------------------------
# Time sinusoid and 3-D RoPE


def time_sinusoid(t: torch.Tensor, dim: int) -> torch.Tensor:
    """[B] -> float64 [B, dim] = [cos(t w_j) | sin(t w_j)], w_j = 10000^(-j/(dim/2)).  Cosines first.

    float64 on purpose: t is up to 1000 and float32 phases would lose several digits.
    """
    half = dim // 2
    pos = t.to(torch.float64)
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    args = torch.outer(pos, freqs)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def rope_split(head_dim: int) -> tuple[int, int]:
    """(d_t, d_h) rotary widths: d_h = 2*floor(d/6) for h and for w, d_t = the rest (128 -> 44, 42)."""
    d_h = head_dim // 6 * 2
    return head_dim - 2 * d_h, d_h


def rope_angles(head_dim: int, T: int, H: int, W: int, device: torch.device | str | None = None) -> torch.Tensor:
    """float32 [T*H*W, head_dim/2] angles, tokens in (t, h, w) row-major order, columns [t | h | w]."""
    if H > MAX_ROPE_HW or W > MAX_ROPE_HW:
        raise ValueError(f"latent grid {H}x{W} patches exceeds the RoPE table ({MAX_ROPE_HW}x{MAX_ROPE_HW})")
    d_t, d_h = rope_split(head_dim)

    def freqs(d: int) -> torch.Tensor:
        # float32 like the reference: 1 / theta ** (arange(0, d, 2) / d)
        return 1.0 / (ROPE_THETA ** (torch.arange(0, d, 2, device=device)[: d // 2].float() / d))

    def pos(n: int) -> torch.Tensor:
        return torch.arange(n, device=device).float()

    a_t = torch.outer(pos(T), freqs(d_t))  # [T, d_t/2]
    a_h = torch.outer(pos(H), freqs(d_h))  # [H, d_h/2]
    a_w = torch.outer(pos(W), freqs(d_h))  # [W, d_h/2]
    grid = torch.cat([
        a_t[:, None, None, :].expand(T, H, W, -1),
        a_h[None, :, None, :].expand(T, H, W, -1),
        a_w[None, None, :, :].expand(T, H, W, -1),
    ], dim=-1)  # [T, H, W, D/2]
    return grid.reshape(T * H * W, -1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the pairs (2i, 2i+1) of x [B, L, H, D] by angle i (cos/sin: [L, D/2]), in float32."""
    B, L, H, D = x.shape
    xf = x.float().view(B, L, H, D // 2, 2)
    x0, x1 = xf[..., 0], xf[..., 1]  # [B, L, H, D/2]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    out = torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1)  # [B, L, H, D/2, 2]
    return out.flatten(3).to(x.dtype)


# ---------------------------------------------------------------------------
# Norms (parameters only; the math lives in kernels.norms)


class RMSNorm(nn.Module):
    """RMSNorm over the whole width (not per head), eps 1e-6, times ``weight``."""

    def __init__(self, dim: int, eps: float, fast: bool):
        super().__init__()
        self.eps = eps
        self.fast = fast  # FastRMSNorm: weight applied in float32 (float32 weight, FORMATS.md section 1)
        self.weight = nn.Parameter(torch.ones(dim, dtype=torch.float32 if fast else None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps, fast=self.fast)


class AffineLayerNorm(nn.Module):
    """``norm3``: the block's only LayerNorm with weight and bias, computed in float32."""

    def __init__(self, dim: int, eps: float, fast: bool):
        super().__init__()
        self.eps = eps
        dtype = torch.float32 if fast else None
        self.weight = nn.Parameter(torch.ones(dim, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(dim, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalize a float32 copy so the affine is applied before the single cast back.
        h = layer_norm_modulate(x.float(), None, None, self.eps)
        return (h * self.weight.float() + self.bias.float()).to(x.dtype)


def make_linear(in_features: int, out_features: int, quant: bool) -> nn.Module:
    """nn.Linear, or Int8Linear for the W8A8 layout of the block linears."""
    return Int8Linear(in_features, out_features) if quant else nn.Linear(in_features, out_features)


def linear_f32(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """The reference's ``autocast(float32)`` around a Linear: float32 math whatever the weight dtype."""
    bias = None if linear.bias is None else linear.bias.float()
    return F.linear(x.float(), linear.weight.float(), bias)


# ---------------------------------------------------------------------------
# Attention


class _Projections(nn.Module):
    """What both attentions hold, named as the checkpoint keys: q, k, v, o and q/k RMSNorms."""

    def __init__(self, dim: int, num_heads: int, eps: float, quant: bool, fast_norm: bool):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = make_linear(dim, dim, quant)
        self.k = make_linear(dim, dim, quant)
        self.v = make_linear(dim, dim, quant)
        self.o = make_linear(dim, dim, quant)
        self.norm_q = RMSNorm(dim, eps, fast_norm)
        self.norm_k = RMSNorm(dim, eps, fast_norm)


class SelfAttention(_Projections):
    def __init__(self, dim: int, num_heads: int, eps: float, attention: str, quant: bool, fast_norm: bool):
        super().__init__(dim, num_heads, eps, quant, fast_norm)
        self.attn_op = AttnOp(attention, self.head_dim)
        # {tensor name: [3C, ...]} whose row slices ARE q/k/v's tensors (see fuse_qkv_); not in
        # the state dict, so the checkpoint names stay q.*, k.*, v.*.
        self._fused_qkv: dict[str, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, topk: float,
                fused: bool = False) -> torch.Tensor:
        if fused:
            return self._forward_fused(x, cos, sin, topk)
        B, L, _ = x.shape
        heads = (B, L, self.num_heads, self.head_dim)
        q = self.norm_q(self.q(x)).view(heads)  # [B, L, H, D]
        k = self.norm_k(self.k(x)).view(heads)
        v = self.v(x).view(heads)
        out = self.attn_op(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v, topk)  # [B, L, H, D]
        return self.o(out.flatten(2))

    # -- fused CUDA path: one q/k/v GEMM, RMSNorm + RoPE in one kernel, written in place --------

    def fuse_qkv_(self) -> bool:
        """Put q, k, v's weights (and int8 scales, biases) into one [3C, ...] tensor each and make the
        three layers' tensors row slices of it, so one GEMM computes q, k and v.  State-dict names
        and values are unchanged; ``load_state_dict`` copies into the slices.  Returns success."""
        lin = (self.q, self.k, self.v)
        names = ("weight", "bias") if isinstance(self.q, nn.Linear) else ("int8_weight", "scale", "bias")
        if isinstance(self.q, Int8Linear) and self.q.out_features % 128:
            return False  # scale rows (128-row tiles) would not split at the q/k/v boundaries
        parts = {n: [getattr(m, n) for m in lin] for n in names}
        if any(p is None or p.is_meta for ps in parts.values() for p in ps):
            return False
        fused = {}
        for n, ps in parts.items():
            t = torch.cat([p.detach() for p in ps], dim=0)
            rows = ps[0].shape[0]
            for i, m in enumerate(lin):
                view = t[i * rows:(i + 1) * rows]
                if n in m._parameters:
                    m._parameters[n] = nn.Parameter(view, requires_grad=False)
                else:
                    m._buffers[n] = view
            fused[n] = t
        self._fused_qkv = fused
        return True

    def _apply(self, fn, recurse=True):
        # .to(device) etc. replace each tensor separately, which would break the sharing: re-fuse.
        was_fused, self._fused_qkv = self._fused_qkv is not None, None
        out = super()._apply(fn, recurse)
        if was_fused:
            self.fuse_qkv_()
        return out

    def _fused_valid(self) -> bool:
        f = self._fused_qkv
        if not f:
            return False
        for n, t in f.items():
            rows = t.shape[0] // 3
            for i, m in enumerate((self.q, self.k, self.v)):
                if getattr(m, n).data_ptr() != t[i * rows].data_ptr():
                    return False
        return True

    def _qkv(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, 3C] = [q | k | v] projections, by one GEMM when fused."""
        if self._fused_valid():
            f = self._fused_qkv
            if isinstance(self.q, Int8Linear):
                return int8_linear(x, f["int8_weight"], f["scale"], f["bias"])
            return F.linear(x, f["weight"], f["bias"])
        return torch.cat([self.q(x), self.k(x), self.v(x)], dim=-1)

    def _forward_fused(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, topk: float) -> torch.Tensor:
        B, L, C = x.shape
        qkv = self._qkv(x)  # [B, L, 3C]
        # RMSNorm + RoPE of q and k in place, so q, k, v stay views with equal strides  [B, L, H, D]
        q = rms_norm_rope(qkv[..., :C], self.norm_q.weight, cos, sin, self.num_heads, self.norm_q.eps,
                          out=qkv[..., :C])
        k = rms_norm_rope(qkv[..., C:2 * C], self.norm_k.weight, cos, sin, self.num_heads, self.norm_k.eps,
                          out=qkv[..., C:2 * C])
        v = qkv[..., 2 * C:].unflatten(-1, (self.num_heads, self.head_dim))
        out = self.attn_op(q, k, v, topk)  # [B, L, H, D]
        return self.o(out.flatten(2))


class CrossAttention(_Projections):
    """Text cross-attention: dense, no RoPE, no mask (padded text rows are attended to)."""

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        q = self.norm_q(self.q(x)).view(B, -1, self.num_heads, self.head_dim)  # [B, L, H, D]
        k = self.norm_k(self.k(context)).view(B, -1, self.num_heads, self.head_dim)  # [B, 512, H, D]
        v = self.v(context).view(B, -1, self.num_heads, self.head_dim)
        return self.o(dense_attention(q, k, v).flatten(2))


# ---------------------------------------------------------------------------
# Block and head


# CUDA fused block: GELU-tanh in the FFN up-projection's GEMM epilogue (cuBLASLt GELU_BIAS through
# torch._addmm_activation) instead of a separate pass over the [L, ffn_dim] activations
# (1.20x on the 1.3B up-projection + GELU on an H200; DiT output agreement unchanged: BENCHMARKS.md).
FFN_GELU_EPILOGUE = True


def ffn_gelu_epilogue(ffn: nn.Sequential, h: torch.Tensor) -> torch.Tensor:
    """ffn(h) for h [B, L, C] with the GELU fused into the first GEMM (bf16 Linear only).

    The epilogue applies GELU to the fp32 accumulator before the one rounding to bf16 (the plain
    path rounds, then GELUs, then rounds again): the same function within bf16 rounding."""
    up, _, down = ffn
    # CUDA only: there the epilogue (and torch's fallback) is the tanh GELU; torch's CPU
    # _addmm_activation applies the erf GELU instead.  Not under autocast either: autocast does
    # not cast _addmm_activation's operands, so a bf16 h would meet the fp32 weights.
    if (not h.is_cuda or type(up) is not nn.Linear or up.bias is None
            or h.dtype != up.weight.dtype or torch.is_autocast_enabled(h.device.type)):
        return ffn(h)
    B, L, C = h.shape
    y = torch._addmm_activation(up.bias, h.reshape(B * L, C), up.weight.t(), use_gelu=True)  # [B*L, F]
    return down(y.view(B, L, -1))


class WanBlock(nn.Module):
    def __init__(self, cfg: DiTConfig, attention: str, quant: bool, fast_norm: bool):
        super().__init__()
        self.eps = cfg.eps
        self.self_attn = SelfAttention(cfg.dim, cfg.num_heads, cfg.eps, attention, quant, fast_norm)
        self.norm3 = AffineLayerNorm(cfg.dim, cfg.eps, fast_norm)
        self.cross_attn = CrossAttention(cfg.dim, cfg.num_heads, cfg.eps, quant, fast_norm)
        self.ffn = nn.Sequential(
            make_linear(cfg.dim, cfg.ffn_dim, quant), nn.GELU(approximate="tanh"), make_linear(cfg.ffn_dim, cfg.dim, quant)
        )
        self.modulation = nn.Parameter(torch.zeros(1, 6, cfg.dim))

    def forward(self, x, e0, context, cos, sin, topk: float, fused: bool = False) -> torch.Tensor:
        """x: [B, L, C] (model dtype); e0: float32 [B, 6, C]; context: [B, 512, C]."""
        if fused:
            return self._forward_fused(x, e0, context, cos, sin, topk)
        # float32 modulation, as the reference's autocast(float32): six chunks of [B, 1, C]
        m = (self.modulation.float() + e0).chunk(6, dim=1)
        h = layer_norm_modulate(x, m[0], m[1], self.eps)  # LN(x) * (1 + m1) + m0, in x's dtype
        x = x + self.self_attn(h, cos, sin, topk) * m[2].to(x.dtype)
        x = x + self.cross_attn(self.norm3(x), context)
        h = layer_norm_modulate(x, m[3], m[4], self.eps)
        x = x + self.ffn(h) * m[5].to(x.dtype)
        return x

    def _forward_fused(self, x, e0, context, cos, sin, topk: float) -> torch.Tensor:
        """The same block on CUDA: each residual add is fused with the norm after it (same roundings)."""
        m = (self.modulation.float() + e0).chunk(6, dim=1)
        h = layer_norm_modulate(x, m[0], m[1], self.eps)
        y = self.self_attn(h, cos, sin, topk, fused=True)
        n3 = self.norm3  # LN(x) * weight + bias in float32: the AFFINE mode of the fused kernel
        x, h = residual_layer_norm(x, y, m[2], n3.bias.view(1, 1, -1), n3.weight.view(1, 1, -1), n3.eps,
                                   affine=True)
        y = self.cross_attn(h, context)
        x, h = residual_layer_norm(x, y, None, m[3], m[4], self.eps)
        y = ffn_gelu_epilogue(self.ffn, h) if FFN_GELU_EPILOGUE else self.ffn(h)
        x, _ = residual_layer_norm(x, y, m[5], None, None, self.eps, norm=False)
        return x


class Head(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.eps = cfg.eps
        self.head = nn.Linear(cfg.dim, cfg.out_dim * cfg.patch_size[0] * cfg.patch_size[1] * cfg.patch_size[2])
        self.modulation = nn.Parameter(torch.zeros(1, 2, cfg.dim))

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """x: [B, L, C]; e: float32 [B, C] (the time embedding, not e0) -> float32 [B, L, out*4]."""
        s0, s1 = (self.modulation.float() + e[:, None]).chunk(2, dim=1)  # [B, 1, C] each
        # The head's LN is Wan's own (not replaced by a fast norm): rounded to x's dtype, then
        # modulated and projected in float32 (autocast(float32) in the reference).
        h = layer_norm_modulate(x, None, None, self.eps).float() * (1 + s1) + s0
        return linear_f32(self.head, h)


# ---------------------------------------------------------------------------
# The model


class WanDiT(nn.Module):
    """Wan2.1 T2V / Wan2.2 I2V diffusion transformer with TurboDiffusion's module names.

    ``attention``: ``original`` | ``sla`` | ``sagesla`` (engine.models.attention.BACKENDS);
    ``quant_linear``: the 10 linears of every block are :class:`Int8Linear`;
    ``fast_norm``: float32 norm weights applied in float32 (the published layout); False gives
    the original Wan RMSNorm order (cast to the input dtype, then multiply).
    """

    def __init__(self, cfg: DiTConfig, attention: str = "sla", quant_linear: bool = False, fast_norm: bool = True):
        super().__init__()
        if cfg.dim % cfg.num_heads or cfg.head_dim % 2:
            raise ValueError(f"dim {cfg.dim} must split into {cfg.num_heads} heads of even width")
        self.cfg = cfg
        self.attention = attention
        self.quant_linear = quant_linear
        self.fast_norm = fast_norm
        self.sla_topk = DEFAULT_SLA_TOPK
        # CUDA: fused block path (fused q/k/v GEMM, RMSNorm+RoPE, residual+norm kernels); False
        # runs the plain block (benchmarks compare both).  Off CUDA the plain block always runs.
        self.fused = True
        self.load_notes: list[str] = []  # what engine.loading adapted, for the UI to show
        kt, kh, kw = cfg.patch_size
        self.patch_embedding = nn.Linear(cfg.in_dim * kt * kh * kw, cfg.dim)
        self.text_embedding = nn.Sequential(
            nn.Linear(cfg.text_dim, cfg.dim), nn.GELU(approximate="tanh"), nn.Linear(cfg.dim, cfg.dim)
        )
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, cfg.dim), nn.SiLU(), nn.Linear(cfg.dim, cfg.dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(cfg.dim, cfg.dim * 6))
        self.blocks = nn.ModuleList(WanBlock(cfg, attention, quant_linear, fast_norm) for _ in range(cfg.num_layers))
        self.head = Head(cfg)

    def fuse_qkv_(self) -> "WanDiT":
        """Fuse every self-attention's q/k/v weights for one GEMM (see SelfAttention.fuse_qkv_)."""
        for block in self.blocks:
            block.self_attn.fuse_qkv_()
        return self

    @property
    def dtype(self) -> torch.dtype:
        """The model dtype (that of the patch embedding)."""
        return self.patch_embedding.weight.dtype

    # -- pieces of the forward pass, public so tests can check intermediates ----------------

    def embed_time(self, timesteps_B_T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """timesteps (B, 1) -> (e [B, C], e0 [B, 6, C]), both float32 whatever the model dtype."""
        t = timesteps_B_T[:, 0]
        sinusoid = time_sinusoid(t, self.cfg.freq_dim).float()  # float64 -> float32, as the reference
        emb0, emb2 = self.time_embedding[0], self.time_embedding[2]
        e = linear_f32(emb2, F.silu(linear_f32(emb0, sinusoid)))  # [B, C]
        e0 = linear_f32(self.time_projection[1], F.silu(e))  # [B, 6C]
        return e, e0.unflatten(1, (6, self.cfg.dim))

    def embed_text(self, crossattn_emb: torch.Tensor) -> torch.Tensor:
        """(B, 512, text_dim) -> (B, 512, C) in the model dtype; padded rows included (no mask)."""
        return self.text_embedding(crossattn_emb.to(self.dtype))

    def patchify(self, x_B_C_T_H_W: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """[B, C, T, H, W] -> ([B, L, C*kt*kh*kw] features ordered (c, kt, kh, kw), (T', H', W'))."""
        kt, kh, kw = self.cfg.patch_size
        B, C, T, H, W = x_B_C_T_H_W.shape
        if T % kt or H % kh or W % kw:
            raise ValueError(f"latent (T, H, W) = {(T, H, W)} is not divisible by the patch {self.cfg.patch_size}")
        gt, gh, gw = T // kt, H // kh, W // kw
        x = x_B_C_T_H_W.reshape(B, C, gt, kt, gh, kh, gw, kw)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # [B, T', H', W', C, kt, kh, kw]
        return x.reshape(B, gt * gh * gw, C * kt * kh * kw), (gt, gh, gw)

    def unpatchify(self, x_B_L_D: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """[B, L, kt*kh*kw*C] (c fastest, the opposite of patchify) -> [B, C, T, H, W]."""
        kt, kh, kw = self.cfg.patch_size
        gt, gh, gw = grid
        B, C = x_B_L_D.shape[0], self.cfg.out_dim
        x = x_B_L_D.reshape(B, gt, gh, gw, kt, kh, kw, C)
        x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)  # [B, C, T', kt, H', kh, W', kw]
        return x.reshape(B, C, gt * kt, gh * kh, gw * kw)

    def forward(
        self,
        x_B_C_T_H_W: torch.Tensor,
        timesteps_B_T: torch.Tensor,
        crossattn_emb: torch.Tensor,
        y_B_C_T_H_W: torch.Tensor | None = None,
        sla_topk: float | None = None,
    ) -> torch.Tensor:
        """Velocity prediction [B, out_dim, T, H, W] (float32, like the reference's float32 head).

        ``sla_topk``: fraction of key blocks the SLA backends keep in this call (default
        ``self.sla_topk``); changing it needs no reload.
        """
        topk = self.sla_topk if sla_topk is None else float(sla_topk)
        dtype = self.dtype

        # 1. I2V conditioning: noise latent + (4 mask + 16 image latent) channels  [B, in_dim, T, H, W]
        if y_B_C_T_H_W is not None:
            x_B_C_T_H_W = torch.cat([x_B_C_T_H_W, y_B_C_T_H_W], dim=1)
        if x_B_C_T_H_W.shape[1] != self.cfg.in_dim:
            raise ValueError(
                f"the DiT takes {self.cfg.in_dim} input channels, got {x_B_C_T_H_W.shape[1]}"
                + (" (I2V needs y_B_C_T_H_W)" if self.cfg.is_i2v and y_B_C_T_H_W is None else "")
            )

        # 2. patchify + embed  [B, L, C]
        tokens, grid = self.patchify(x_B_C_T_H_W.to(dtype))
        x = self.patch_embedding(tokens)

        # 3. time: e [B, C], e0 [B, 6, C], float32
        e, e0 = self.embed_time(timesteps_B_T)

        # 4. text context  [B, 512, C]
        context = self.embed_text(crossattn_emb)

        # 5. RoPE angles for the (T', H', W') token grid  [L, D/2], shared by all blocks
        angles = rope_angles(self.cfg.head_dim, *grid, device=x.device)
        cos, sin = torch.cos(angles), torch.sin(angles)

        # 6. blocks  [B, L, C]
        fused = self.fused and self.fast_norm and triton_usable(x)
        for block in self.blocks:
            x = block(x, e0, context, cos, sin, topk, fused=fused)

        # 7. head (uses e, not e0)  float32 [B, L, out_dim*kt*kh*kw]
        out = self.head(x, e)

        # 8. unpatchify  [B, out_dim, T, H, W]
        return self.unpatchify(out, grid)
