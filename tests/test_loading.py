"""engine.loading beyond the DiT: VAE and umT5 files through the loader, random weights."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from _reference import fixture, subdict
from engine.configs import PRESETS, DiTConfig, T5Config, VAEConfig
from engine.errors import CheckpointError
from engine.loading import (
    build_random_dit, build_random_text_encoder, build_random_vae, init_random_, load_text_encoder, load_vae,
)
from engine.models.wan_dit import WanDiT


@torch.no_grad()
def test_load_vae_reproduces_fixture(tmp_path):
    t, side = fixture("vae")
    path = tmp_path / "vae.safetensors"
    save_file(subdict(t, "weights."), str(path))
    vae = load_vae(path, VAEConfig(dim=side["config"]["dim"]), dtype=torch.float32)
    assert not any(p.is_meta for p in vae.state_dict().values())
    torch.testing.assert_close(vae.decode(t["input.latent"]), t["expected.decoded_from_latent"], atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_load_text_encoder_reproduces_fixture(tmp_path):
    t, side = fixture("umt5")
    c = side["config"]
    cfg = T5Config(vocab_size=c["vocab"], dim=c["dim"], dim_attn=c["dim_attn"], dim_ffn=c["dim_ffn"],
                   num_heads=c["num_heads"], num_layers=c["num_layers"], num_buckets=c["num_buckets"],
                   text_len=c["text_len"])
    path = tmp_path / "t5.pth"
    torch.save(subdict(t, "weights."), path)
    enc = load_text_encoder(path, cfg, dtype=torch.float32)
    torch.testing.assert_close(enc(t["input.ids"], t["input.mask"]), t["expected.encoder_output"], atol=1e-5, rtol=1e-4)
    with pytest.raises(CheckpointError, match="expected a umT5 text encoder"):
        load_text_encoder(path, T5Config(vocab_size=c["vocab"], dim=64, dim_attn=64, dim_ffn=64, num_heads=4,
                                         num_layers=2), dtype=torch.float32)


def test_random_weights_are_keyed_by_name():
    small = build_random_dit(DiTConfig(dim=64, ffn_dim=128, num_heads=2, num_layers=1, text_dim=32), seed=7)
    deep = build_random_dit(DiTConfig(dim=64, ffn_dim=128, num_heads=2, num_layers=3, text_dim=32), seed=7)
    for k, v in small.state_dict().items():
        assert torch.equal(deep.state_dict()[k], v), k  # construction order/size does not matter
    again = build_random_dit(DiTConfig(dim=64, ffn_dim=128, num_heads=2, num_layers=1, text_dim=32), seed=8)
    assert not torch.equal(again.head.head.weight, small.head.head.weight)


def test_random_weights_are_non_trivial_everywhere():
    m = build_random_dit(PRESETS["tiny"].dit, seed=0)
    for k, v in m.state_dict().items():
        assert bool(torch.isfinite(v).all()) and float(v.float().std()) > 0, k
    assert float(m.head.head.weight.abs().mean()) > 0.01
    assert float(m.blocks[0].self_attn.attn_op.local_attn.proj_l.weight.abs().mean()) > 0.01
    # init_random_ on an already-built module gives the same values
    with torch.device("meta"):
        fresh = WanDiT(PRESETS["tiny"].dit)
    fresh = init_random_(fresh.to_empty(device="cpu"), seed=0)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in m.state_dict().items())


@torch.no_grad()
def test_tiny_presets_run():
    for name in ("tiny", "tiny-i2v"):
        cfg = PRESETS[name].dit
        m = build_random_dit(cfg, seed=0, dtype=torch.bfloat16)
        x = torch.randn(1, 16, 2, 8, 8)
        y = torch.randn(1, 20, 2, 8, 8) if cfg.is_i2v else None
        out = m(x, torch.tensor([[900.0]]), torch.randn(1, 512, cfg.text_dim), y_B_C_T_H_W=y)
        assert out.shape == x.shape and bool(torch.isfinite(out).all())
    vae = build_random_vae(PRESETS["tiny"].vae, seed=1)
    enc = build_random_text_encoder(PRESETS["tiny"].text, seed=0)
    assert all(float(v.float().std()) > 0 for v in list(vae.state_dict().values()) + list(enc.state_dict().values())
               if v.numel() > 1)
