"""CUDA-graph replay of the DiT forward, and regional ``torch.compile`` of its blocks.

A denoising turn calls the same DiT with the same shapes 1-4 times (and again next turn), so one
forward can be captured into a :class:`torch.cuda.CUDAGraph` with static input buffers and
replayed: each call copies its inputs into the buffers and launches the whole forward at once
(no per-kernel launch cost, no Python in between).  Off CUDA, outside inference mode, or for a
module whose weights may move (offloading), the plain forward runs.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: tuple[torch.Tensor | None, ...]  # static x, timesteps, context, y
    out: torch.Tensor


class GraphedDiT:
    """Call it like the DiT: ``(x, timesteps, context, y_B_C_T_H_W=None, sla_topk=None)``.

    One graph per input signature (shapes, dtypes, device, ``sla_topk``), the ``max_graphs`` most
    recent kept (each holds one forward's activations in its own memory pool).  Graphs are used
    under ``torch.inference_mode`` only (the static buffers are inference tensors).  The weights
    must stay where they were at capture, and the net's settings (``fused``, kernel options) are
    frozen into the graph: :meth:`reset` after changing either.
    """

    def __init__(self, net: nn.Module, max_graphs: int = 2, warmup: int = 2):
        self.net = net
        self.max_graphs = max_graphs
        self.warmup = warmup
        self._graphs: OrderedDict[tuple, _Captured] = OrderedDict()
        self.captures = 0  # how many graphs were captured (tests, benchmarks)

    def reset(self) -> None:
        self._graphs.clear()

    def __call__(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                 y_B_C_T_H_W: torch.Tensor | None = None, sla_topk: float | None = None) -> torch.Tensor:
        if not x.is_cuda or not torch.is_inference_mode_enabled():
            return self.net(x, timesteps, context, y_B_C_T_H_W=y_B_C_T_H_W, sla_topk=sla_topk)
        inputs = (x, timesteps, context, y_B_C_T_H_W)
        key = (sla_topk, *((None if t is None else (tuple(t.shape), t.dtype, t.device)) for t in inputs))
        cap = self._graphs.get(key)
        if cap is None:
            cap = self._capture(inputs, sla_topk)
            self._graphs[key] = cap
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
            for static, t in zip(cap.inputs, inputs):
                if static is not None:
                    static.copy_(t)
        cap.graph.replay()
        # a copy: the next replay overwrites cap.out
        return cap.out.clone()

    def _capture(self, inputs, sla_topk) -> _Captured:
        static = tuple(None if t is None else t.clone() for t in inputs)

        def run() -> torch.Tensor:
            x, t, ctx, y = static
            return self.net(x, t, ctx, y_B_C_T_H_W=y, sla_topk=sla_topk)

        # Warm up on a side stream (Triton compiles, cuDNN/cuBLAS pick their algorithms and
        # workspaces) so that nothing is compiled or chosen during the capture.
        side = torch.cuda.Stream(device=static[0].device)
        side.wait_stream(torch.cuda.current_stream(static[0].device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                run()
        torch.cuda.current_stream(static[0].device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = run()
        self.captures += 1
        return _Captured(graph, static, out)


def compile_blocks_(net: nn.Module, mode: str | None = None) -> nn.Module:
    """Regional compilation: ``torch.compile`` every transformer block in place (``Module.compile``
    keeps the parameter names), so one compiled block serves all layers of the same shape."""
    for block in net.blocks:
        block.compile(mode=mode)
    return net
