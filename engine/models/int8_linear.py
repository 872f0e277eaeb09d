"""W8A8 int8 linear layer with the published TurboDiffusion layout.

Buffers (FORMATS.md section 3, the reference's ``ops/core.py::Int8Linear``):
``int8_weight`` int8 [out, in], ``scale`` float32 [ceil(out/128), ceil(in/128)] (one scale per
128x128 weight tile), ``bias`` [out] in the model dtype.  The forward pass quantizes the
activations with the same tile rule and runs the block-scaled int8 GEMM
(:func:`kernels.int8.int8_linear`: Triton on CUDA, the plain-torch reference elsewhere).
"""

from __future__ import annotations

import torch
from torch import nn

from kernels.int8 import TILE, int8_linear, quantize_weight


class Int8Linear(nn.Module):
    """Drop-in replacement for ``nn.Linear`` holding an int8 weight with 128x128 block scales.

    Do not call ``.to(dtype)`` / ``.half()`` on a module holding these: ``scale`` must stay float32
    (``engine.loading`` casts tensor by tensor for that reason).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        scale_shape = (-(-out_features // TILE), -(-in_features // TILE))
        self.register_buffer("int8_weight", torch.zeros(out_features, in_features, dtype=torch.int8, device=device))
        self.register_buffer("scale", torch.ones(scale_shape, dtype=torch.float32, device=device))
        if bias:
            self.register_buffer("bias", torch.zeros(out_features, dtype=dtype, device=device))
        else:
            self.bias = None

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "Int8Linear":
        """Quantize ``linear`` (any float dtype) to the published layout; bias keeps its dtype."""
        w = linear.weight.detach()
        q = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                device=w.device, dtype=w.dtype)
        w_q, w_scale = quantize_weight(w)
        q.int8_weight.copy_(w_q)
        q.scale.copy_(w_scale)
        if linear.bias is not None:
            q.bias.copy_(linear.bias.detach())
        return q

    def dequantized_weight(self) -> torch.Tensor:
        """float32 [out, in] = int8_weight * scale of its tile (for inspection and tests)."""
        rows = torch.arange(self.out_features, device=self.scale.device) // TILE
        cols = torch.arange(self.in_features, device=self.scale.device) // TILE
        return self.int8_weight.float() * self.scale[rows][:, cols]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return int8_linear(x, self.int8_weight, self.scale, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
