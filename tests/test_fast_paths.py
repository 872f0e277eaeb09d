"""Inference-only speed-ups of issue 9 on the CPU: the VAE's FastDecode options give the plain
decode's values, step aside under autograd, and GraphedDiT falls back to the plain forward."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine import loading
from engine.configs import VAEConfig, get_preset
from engine.graphs import GraphedDiT
from engine.models.wan_vae import FastDecode

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: extra threads only contend (seconds instead of tenths on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def vae_and_latent():
    vae = loading.build_random_vae(VAEConfig(dim=4), 3)
    lat = torch.randn(1, 16, 5, 2, 3, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        plain = vae.decode(lat)
    return vae, lat, plain


@pytest.mark.parametrize("fast", [FastDecode(), FastDecode(static_cache=True),
                                  FastDecode(layout=False, native_upsample=False, static_cache=True)])
def test_fast_decode_options_give_the_plain_values(vae_and_latent, fast):
    vae, lat, plain = vae_and_latent
    vae.fast_decode = fast
    try:
        with torch.inference_mode():
            out = vae.decode(lat)
            again = vae.decode(lat)  # the cache is per call: a second decode is the same
    finally:
        vae.fast_decode = None
    assert torch.equal(out, plain) and torch.equal(again, plain)


@pytest.fixture
def cudnn_layout(monkeypatch):
    """3-D convolutions return channels-last outputs, as cuDNN does for channels-last weights (the
    CPU's return contiguous ones): the decode's channels-last paths run here, with the same values."""
    conv3d = torch.nn.functional.conv3d

    def channels_last_conv3d(*args, **kwargs):
        return conv3d(*args, **kwargs).contiguous(memory_format=torch.channels_last_3d)

    monkeypatch.setattr(torch.nn.functional, "conv3d", channels_last_conv3d)


@pytest.mark.parametrize("fast", [FastDecode(), FastDecode(static_cache=True),
                                  FastDecode(static_cache=True, frames_per_chunk=3),
                                  FastDecode(copy_upsample=False, static_cache=True),
                                  FastDecode(layout=False, native_upsample=False, copy_upsample=False)])
def test_channels_last_fast_decode_gives_the_plain_values(vae_and_latent, cudnn_layout, monkeypatch, fast):
    """Channels-last activations (the CUDA engine's layout): every option still gives the plain
    decode's values; copy_upsample does all nearest upsampling (and the time interleave) itself."""
    _, lat, _ = vae_and_latent
    vae = loading.build_random_vae(VAEConfig(dim=4), 3).to_channels_last_()
    interpolate, calls = torch.nn.functional.interpolate, []
    monkeypatch.setattr(torch.nn.functional, "interpolate", lambda *a, **k: calls.append(1) or interpolate(*a, **k))
    with torch.inference_mode():
        plain = vae.decode(lat)
        n_plain = len(calls)
        vae.fast_decode = fast
        chunks = list(vae.decode_chunks(lat))
    out = torch.cat(chunks, dim=2)
    assert all(c.is_contiguous(memory_format=torch.channels_last_3d) for c in chunks)
    if fast.frames_per_chunk == 1:
        assert torch.equal(out, plain)
    else:
        torch.testing.assert_close(out, plain, atol=1e-5, rtol=1e-4)
    assert n_plain > 0 and (len(calls) == n_plain) == fast.copy_upsample  # no interpolate at all


def test_upsample_copy_equals_interpolate_and_interleave():
    """The copy upsampling equals F.interpolate(nearest-exact) of the interleaved frames, for several
    dtypes, and steps aside where the channels do not fill whole 8-byte words."""
    from engine.models.wan_vae import _upsample_copy

    g = torch.Generator().manual_seed(3)
    for dtype, c in ((torch.float32, 6), (torch.bfloat16, 8), (torch.float16, 12)):
        x = torch.randn(2, 2 * c, 3, 5, 7, generator=g).to(dtype).contiguous(memory_format=torch.channels_last_3d)
        for k in (1, 2):  # pairs: frame 2t + j is channels [j*C:(j+1)*C] of frame t
            frames = x.reshape(2, k, 2 * c // k, 3, 5, 7).permute(0, 3, 1, 2, 4, 5).reshape(-1, 2 * c // k, 5, 7)
            want = torch.nn.functional.interpolate(frames, scale_factor=2.0, mode="nearest-exact")
            got = _upsample_copy(x, pairs=k == 2)  # [2, C, 3k, 10, 14]
            assert got.is_contiguous(memory_format=torch.channels_last_3d)
            assert torch.equal(got.transpose(1, 2).reshape(want.shape), want)
    bf = torch.randn(1, 6, 2, 3, 3).to(torch.bfloat16)  # 12-byte pixels
    assert _upsample_copy(bf.contiguous(memory_format=torch.channels_last_3d), pairs=False) is None
    assert _upsample_copy(torch.randn(1, 8, 2, 3, 3), pairs=False) is None  # not channels-last


@pytest.mark.parametrize("static", [False, True])
def test_frames_per_chunk_changes_chunks_not_values(vae_and_latent, static):
    vae, lat, plain = vae_and_latent
    vae.fast_decode = FastDecode(frames_per_chunk=3, static_cache=static)
    try:
        with torch.inference_mode():
            chunks = list(vae.decode_chunks(lat))
    finally:
        vae.fast_decode = None
    # frame 0 alone, then latent frames 1-3 and 4: 1, 12 and 4 video frames
    assert [c.shape[2] for c in chunks] == [1, 12, 4]
    torch.testing.assert_close(torch.cat(chunks, dim=2), plain, atol=1e-5, rtol=1e-4)


def test_fast_decode_steps_aside_under_autograd(vae_and_latent):
    """Training decodes with autograd on: the plain path runs and gradients are those of the plain path."""
    vae, lat, _ = vae_and_latent
    grads = []
    for fast in (None, FastDecode(static_cache=True, frames_per_chunk=2)):
        vae.fast_decode = fast
        z = lat.clone().requires_grad_(True)
        vae.decode(z).square().mean().backward()
        grads.append(z.grad)
    vae.fast_decode = None
    assert torch.equal(grads[0], grads[1])


def test_frames_per_chunk_must_be_positive():
    with pytest.raises(ValueError, match="frames_per_chunk"):
        FastDecode(frames_per_chunk=0)


def test_compiled_decoder_stays_out_of_the_state_dict(vae_and_latent):
    vae, _, _ = vae_and_latent
    keys = list(vae.state_dict())
    vae._compiled_decoder("default")  # torch.compile is lazy: nothing compiles until called
    assert list(vae.state_dict()) == keys


def test_cuda_vae_decode_options_follow_total_gpu_memory():
    from engine import pipeline

    gib = 2**30
    # 24 GB card (22.5 GiB reported), 40 GB A100 (39.4 GiB): no static cache (~2.6 GiB more peak).
    for total in (int(22.5 * gib), 42_298_834_944, 40 * gib - 1):
        assert pipeline.vae_fast_decode_for(total) == FastDecode()
    for total in (40 * gib, int(79.1 * gib), int(139.8 * gib)):  # threshold, H100 80GB, H200
        assert pipeline.vae_fast_decode_for(total) == FastDecode(static_cache=True)
        # an offload option asks for low memory: no static cache on any GPU
        assert pipeline.vae_fast_decode_for(total, low_memory=True) == FastDecode()


def test_graphed_dit_falls_back_to_the_plain_forward_on_cpu():
    net = loading.build_random_dit(get_preset("tiny").dit, 7, attention="sla")
    g = torch.Generator().manual_seed(1)
    x, ctx = torch.randn(1, 16, 3, 4, 4, generator=g), torch.randn(1, 512, 64, generator=g)
    t = torch.full((1, 1), 988.0)
    graphed = GraphedDiT(net)
    with torch.inference_mode():
        assert torch.equal(graphed(x, t, ctx, sla_topk=0.5), net(x, t, ctx, sla_topk=0.5))
    assert graphed.captures == 0


def test_bench_smoke_runs_every_variant():
    # on the CPU also on a GPU machine: the smoke shapes check that each path runs, and the
    # bit-equality count below is the CPU's (there the cuDNN options change nothing)
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "vae_decode.py"), "--smoke", "--device", "cpu"],
                          capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "FAILED" not in proc.stdout
    assert "| CUDA graph (GraphedDiT) |" in proc.stdout and "| + static_cache |" in proc.stdout
    assert proc.stdout.count("| yes |") == 2  # cudnn.benchmark does nothing on a CPU: bit-equal


@pytest.mark.parametrize("channels_last", [False, True])
def test_static_cache_slot_streams_like_a_copy(channels_last):
    """A producer that writes a chunk into CausalCache.slot() (the CUDA RMSNorm+SiLU does), or a
    chunk streamed without one, gives the convolution the plain cache's input -- stream plus the
    zero frames still to pad -- from the first chunk on (the static past starts as those zeros),
    with chunk lengths below, at and above the past's length (the overlapping case included)."""
    import torch.nn.functional as F

    from engine.models.wan_vae import CausalCache

    layer = torch.nn.Identity()
    g = torch.Generator().manual_seed(5)
    chunks = [torch.randn(1, 3, t, 2, 4, generator=g) for t in (1, 1, 4, 1, 1, 3, 2)]
    if channels_last:
        chunks = [c.to(memory_format=torch.channels_last_3d) for c in chunks]
    fast = FastDecode(static_cache=True)
    plain, slotted, copied = CausalCache(), CausalCache(fast), CausalCache(fast)
    for i, c in enumerate(chunks):
        stream, pad = plain.stream(layer, c, 2)
        want = F.pad(stream, (0, 0, 0, 0, pad, 0))
        slotted.slot(layer, c, 2)  # asked twice before the chunk comes: the past moves once
        slot = slotted.slot(layer, c, 2)
        got, got_pad = slotted.stream(layer, slot.copy_(c), 2)
        assert got_pad == 0 and torch.equal(got, want), i
        # the slot is the stream's tail: nothing was copied into a new tensor
        p = got.shape[2] - slot.shape[2]
        assert slot.data_ptr() == got.data_ptr() + p * got.stride(2) * got.element_size()
        got, got_pad = copied.stream(layer, c, 2)
        assert got_pad == 0 and torch.equal(got, want), i
        assert got.is_contiguous(memory_format=torch.channels_last_3d if channels_last else torch.contiguous_format)


@pytest.mark.parametrize("fast", [FastDecode(static_cache=True), None])
def test_fused_residual_block_path_matches_the_plain_decode(vae_and_latent, cudnn_layout, monkeypatch, fast):
    """The CUDA residual block (convolutions without their biases; the norm adds conv1's, one pass
    adds conv2's, the shortcut's and the residual) run on the CPU through the kernels' torch
    fallbacks: the plain decode's values up to float32 summation order."""
    from engine.models import wan_vae

    _, lat, _ = vae_and_latent
    vae = loading.build_random_vae(VAEConfig(dim=4), 3).to_channels_last_()
    for m in vae.modules():  # non-zero biases everywhere, so a dropped or doubled bias shows
        if isinstance(m, torch.nn.Conv3d) and m.bias is not None:
            torch.nn.init.normal_(m.bias, std=0.5)
    with torch.inference_mode():
        plain = vae.decode(lat)
        monkeypatch.setattr(wan_vae, "triton_usable", lambda t: True)
        vae.fast_decode = fast
        fused = vae.decode(lat)
    assert isinstance(vae.decoder.upsamples[0].shortcut, torch.nn.Identity)
    assert any(isinstance(b, wan_vae.ResidualBlock) and isinstance(b.shortcut, wan_vae.CausalConv3d)
               for b in vae.decoder.upsamples)  # both shortcut kinds ran
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-4)
