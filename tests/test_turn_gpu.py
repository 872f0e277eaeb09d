"""GPU tests of the fused DiT / VAE paths against the plain reference path (skip without CUDA).

Full-size numbers come from ``python3 bench/turn.py --suite DIR`` (BENCHMARKS.md "Full-size
turn"); these use small shapes so they run in seconds.  Tolerances: relative L2 error 2e-2 for
bf16 outputs (the issue's agreement bound for a DiT step).
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _rel(a, b) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("attention,quant", [("sla", False), ("sagesla", True), ("original", False)])
def test_fused_dit_forward_agrees_with_reference(attention, quant):
    from engine import loading
    from engine.configs import DiTConfig
    from kernels.registry import reference_only

    cfg = DiTConfig(dim=256, ffn_dim=512, num_heads=2, num_layers=2)
    m = loading.build_random_dit(cfg, 1, attention=attention, quant_linear=quant, device="cuda",
                                 dtype=torch.bfloat16)
    assert m.blocks[0].self_attn._fused_valid()
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(1, 16, 5, 30, 34, device="cuda", generator=g).to(torch.bfloat16)  # 1,275 tokens
    ctx = torch.randn(1, 512, 4096, device="cuda", generator=g).to(torch.bfloat16)
    t = torch.full((1, 1), 900.0, device="cuda").to(torch.bfloat16)
    with torch.inference_mode():
        fast = m(x, t, ctx)
        with reference_only():
            ref = m(x, t, ctx)
    assert torch.isfinite(fast).all()
    assert _rel(fast, ref) < 2e-2


def test_fused_vae_decode_agrees_with_reference():
    from engine import loading
    from engine.configs import VAEConfig
    from kernels.registry import reference_only

    vae = loading.build_random_vae(VAEConfig(), 2, device="cuda", dtype=torch.bfloat16)
    lat = torch.randn(1, 16, 3, 12, 16, device="cuda").to(torch.bfloat16)
    with torch.inference_mode():
        with reference_only():
            ref = vae.decode(lat)
        fast = vae.decode(lat)
        vae.to_channels_last_()
        fast_cl = vae.decode(lat)
    assert _rel(fast, ref) < 2e-2 and _rel(fast_cl, ref) < 2e-2


def test_streaming_turn_writes_the_same_frames(tmp_path):
    """The CUDA decode+write path (uint8 on the GPU, encoder thread) gives a readable mp4 of the
    right length, and uint8 conversion on the GPU equals engine.video.to_uint8_frames."""
    import numpy as np

    from engine.pipeline import to_uint8_frames_torch
    from engine.video import to_uint8_frames

    v = torch.randn(1, 3, 5, 16, 24, device="cuda") * 1.2
    assert np.array_equal(to_uint8_frames_torch(v)[0].cpu().numpy(), to_uint8_frames(v[0].cpu().numpy()))


@pytest.mark.parametrize("channels_last", [False, True])
def test_static_cache_decode_equals_the_plain_fast_decode(channels_last):
    """FastDecode(static_cache=True) -- RMSNorm+SiLU written straight into the next convolution's
    cache buffer -- and FastDecode() give the values of FastDecode(copy_upsample=False) -- torch's
    upsampling, and torch adding the bias of the convolution after it -- bit for bit (same
    operations on the same numbers; cuDNN pinned to deterministic algorithms so every run uses the
    same kernels)."""
    from engine import loading
    from engine.configs import VAEConfig
    from engine.models.wan_vae import FastDecode
    from kernels.norms import channel_rms_silu, channel_rms_silu_reference

    vae = loading.build_random_vae(VAEConfig(dim=32), 4, device="cuda", dtype=torch.bfloat16)
    if channels_last:
        vae.to_channels_last_()
    lat = torch.randn(1, 16, 4, 12, 16, device="cuda").to(torch.bfloat16)
    bench, det = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        with torch.inference_mode():
            outs = []
            for fast in (FastDecode(copy_upsample=False), FastDecode(), FastDecode(static_cache=True)):
                vae.fast_decode = fast
                outs.append(torch.cat(list(vae.decode_chunks(lat)), dim=2))
    finally:
        vae.fast_decode = None
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = bench, det
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
    # the kernel's out= path writes into a strided slice exactly what it returns otherwise
    x = torch.randn(1, 32, 3, 8, 8, device="cuda").to(torch.bfloat16)
    gamma = torch.rand(32, 1, 1, 1, device="cuda")
    buf = torch.zeros(1, 32, 5, 8, 8, device="cuda", dtype=torch.bfloat16)
    y = channel_rms_silu(x, gamma, out=buf[:, :, 2:])
    assert torch.equal(y, channel_rms_silu(x, gamma)) and torch.equal(buf[:, :, 2:], y)
    assert not buf[:, :, :2].any()
    assert _rel(y, channel_rms_silu_reference(x.float(), gamma)) < 1e-2


@pytest.mark.parametrize("channels_last", [False, True])
def test_vae_residual_block_fused_biases_bit_equal(channels_last):
    """The CUDA residual block convolves without the biases and adds them in the norm and in one
    residual pass (kernels.vae.channel_bias_add): the values of torch's convolutions with their
    biases (cuDNN convolves, then adds the bias in a pass of its own), bit for bit."""
    from engine.models.wan_vae import CausalCache, ResidualBlock
    from kernels.norms import channel_rms_silu

    det = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = True
    try:
        for in_dim, out_dim in ((96, 96), (96, 192)):  # identity and convolution shortcuts
            g = torch.Generator(device="cuda").manual_seed(in_dim + out_dim)
            blk = ResidualBlock(in_dim, out_dim).to("cuda", torch.bfloat16)
            with torch.no_grad():
                for m in blk.modules():
                    if isinstance(m, torch.nn.Conv3d):
                        m.bias.normal_(0.0, 0.5, generator=g)
                        if channels_last:
                            m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last_3d)
            fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
            x = torch.randn(2, in_dim, 3, 20, 24, device="cuda", generator=g).to(torch.bfloat16)
            x = x.contiguous(memory_format=fmt)
            with torch.inference_mode():
                got = blk(x, CausalCache())
                r = blk.residual
                y = r[2](channel_rms_silu(x, r[0].gamma), CausalCache())
                want = r[6](channel_rms_silu(y, r[3].gamma), CausalCache()) + blk.shortcut(x)
            assert torch.equal(got, want), (in_dim, out_dim)
    finally:
        torch.backends.cudnn.deterministic = det
