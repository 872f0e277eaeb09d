"""Every kind of bad checkpoint gives one CheckpointError naming the file, what was expected and
what was found — never a raw KeyError or pickle traceback."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from engine.configs import DiTConfig, VAEConfig
from engine.errors import CheckpointError
from engine.loading import build_random_dit, build_random_vae, load_dit, load_vae

T2V = DiTConfig(dim=64, ffn_dim=128, num_heads=2, num_layers=2, text_dim=32)
I2V = DiTConfig(dim=64, ffn_dim=128, num_heads=2, num_layers=2, text_dim=32, in_dim=36)


class Payload:
    """An arbitrary object: a checkpoint holding one must be refused, not unpickled."""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    out = {}
    for name, cfg, attention in (("t2v", T2V, "sla"), ("i2v", I2V, "sla"), ("dense", T2V, "original")):
        sd = build_random_dit(cfg, seed=1, attention=attention, dtype=torch.bfloat16).state_dict()
        out[name] = d / f"{name}.pth"
        torch.save(sd, out[name])
        out[name + "_st"] = d / f"{name}.safetensors"
        save_file(sd, str(out[name + "_st"]))
    out["vae"] = d / "vae.pth"
    torch.save(build_random_vae(VAEConfig(dim=4), seed=1).state_dict(), out["vae"])
    return out


def _error(path, cfg=T2V, **kw) -> str:
    with pytest.raises(CheckpointError) as info:
        load_dit(path, cfg, dtype=torch.float32, **kw)
    msg = str(info.value)
    assert msg.startswith(str(path)), msg  # names the file
    assert "Traceback" not in msg
    return msg


def test_good_files_load(files):
    for key in ("t2v", "t2v_st"):
        m = load_dit(files[key], T2V, dtype=torch.float32)
        assert m.dtype == torch.float32 and m.blocks[0].norm3.weight.dtype == torch.float32


def test_i2v_file_given_as_t2v(files):
    msg = _error(files["i2v"])
    assert "expected a Wan T2V DiT (dim 64, 2 layers)" in msg
    assert "found a Wan I2V DiT" in msg
    assert "patch_embedding.weight" in msg and "[64, 144]" in msg


def test_t2v_file_given_as_i2v(files):
    msg = _error(files["t2v_st"], I2V)
    assert "expected a Wan I2V DiT" in msg and "found a Wan T2V DiT" in msg


def test_wrong_model_size(files):
    deeper = DiTConfig(dim=64, ffn_dim=128, num_heads=2, num_layers=3, text_dim=32)
    msg = _error(files["t2v"], deeper)
    assert "expected a Wan T2V DiT (dim 64, 3 layers)" in msg and "2 layers" in msg and "keys missing" in msg
    wider = DiTConfig(dim=128, ffn_dim=128, num_heads=2, num_layers=2, text_dim=32)
    msg = _error(files["t2v"], wider)
    assert "expected a Wan T2V DiT (dim 128, 2 layers)" in msg and "found a Wan T2V DiT (dim 64" in msg
    assert "has shape" in msg


def test_truncated_files(files, tmp_path):
    for key, suffix in (("t2v", ".pth"), ("t2v_st", ".safetensors")):
        data = files[key].read_bytes()
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(data[: len(data) // 2])
        msg = _error(cut)
        assert "truncated" in msg


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n" * 20)
    msg = _error(text)
    assert "not a PyTorch checkpoint" in msg and "expected a Wan T2V DiT" in msg

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00\x01" * 100)
    assert "not a readable safetensors" in _error(junk)

    code = tmp_path / "code.pth"
    torch.save({"x": Payload()}, code)
    assert "refused to unpickle" in _error(code)

    lst = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], lst)
    assert "holds a list" in _error(lst)

    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert "empty" in _error(empty)

    assert "not found" in _error(tmp_path / "missing.pth")


def test_vae_file_given_as_dit(files):
    msg = _error(files["vae"])
    assert "expected a Wan T2V DiT" in msg and "found a Wan video VAE" in msg


def test_dit_file_given_as_vae(files):
    with pytest.raises(CheckpointError) as info:
        load_vae(files["t2v"], VAEConfig(dim=4))
    msg = str(info.value)
    assert msg.startswith(str(files["t2v"]))
    assert "expected a Wan video VAE" in msg and "found a Wan T2V DiT" in msg


def test_dense_file_needs_original_attention(files):
    msg = _error(files["dense"], attention="sla")
    assert "proj_l" in msg and "--attention original" in msg
    m = load_dit(files["dense"], T2V, attention="original", dtype=torch.float32)
    assert m.attention == "original"


def test_partial_file(files, tmp_path):
    sd = torch.load(files["t2v"], weights_only=True)
    del sd["blocks.1.ffn.2.bias"]
    path = tmp_path / "partial.pth"
    torch.save(sd, path)
    msg = _error(path)
    assert "1 keys missing (e.g. blocks.1.ffn.2.bias)" in msg


def test_bad_int8_dtype(files, tmp_path):
    m = build_random_dit(T2V, seed=1, quant_linear=True, dtype=torch.bfloat16)
    sd = m.state_dict()
    sd["blocks.0.ffn.0.int8_weight"] = sd["blocks.0.ffn.0.int8_weight"].float()
    path = tmp_path / "badq.pth"
    torch.save(sd, path)
    assert "'blocks.0.ffn.0.int8_weight' should be int8" in _error(path)


def test_accepted_variants(files, tmp_path):
    """Not errors: Conv3d-shaped patch embedding, a training wrapper with a net. prefix."""
    sd = torch.load(files["t2v"], weights_only=True)
    ref = load_dit(files["t2v"], T2V, dtype=torch.float32).state_dict()
    conv = dict(sd, **{"patch_embedding.weight": sd["patch_embedding.weight"].reshape(64, 16, 1, 2, 2)})
    wrapped = {"state_dict": {"net." + k: v for k, v in sd.items()}}
    for name, obj in (("conv", conv), ("wrapped", wrapped)):
        path = tmp_path / f"{name}.pth"
        torch.save(obj, path)
        got = load_dit(path, T2V, dtype=torch.float32).state_dict()
        assert all(torch.equal(got[k], v) for k, v in ref.items()), name


def test_tiny_patch_layouts_are_described_by_their_kind():
    from engine.checkpoint import describe_state_dict
    from engine.configs import PRESETS
    from engine.loading import expected_dit_keys

    for name, kind in (("tiny", "T2V"), ("tiny-i2v", "I2V")):
        layout = expected_dit_keys(PRESETS[name].dit)  # {name: (shape, dtype)}
        sd = {k: torch.empty(tuple(shape), device="meta") for k, (shape, _) in layout.items()}
        cfg = PRESETS[name].dit
        assert describe_state_dict(sd).startswith(f"a Wan {kind} DiT (dim {cfg.dim}, {cfg.num_layers} layers")
