"""umT5 encoder: key layout of the published file, the float32 fixture, the bucket table."""

from __future__ import annotations

import pytest
import torch

from engine.configs import PRESETS, T5Config
from engine.models.umt5 import UMT5Encoder, encode_text, relative_position_bucket
from _reference import fixture as load_fixture, layout as load_layout, subdict

ATOL, RTOL = 1e-5, 1e-4  # FORMATS.md section 11


def _fixture_config(sidecar) -> T5Config:
    c = sidecar["config"]
    return T5Config(vocab_size=c["vocab"], dim=c["dim"], dim_attn=c["dim_attn"], dim_ffn=c["dim_ffn"],
                    num_heads=c["num_heads"], num_layers=c["num_layers"], num_buckets=c["num_buckets"],
                    text_len=c["text_len"])


@pytest.fixture(scope="module")
def fixture():
    tensors, sidecar = load_fixture("umt5")
    enc = UMT5Encoder(_fixture_config(sidecar))
    enc.load_state_dict(subdict(tensors, "weights."), strict=True)
    return enc.eval(), tensors, sidecar


def test_key_layout_matches_published_file():
    layout = load_layout("umt5_xxl_encoder")
    with torch.device("meta"):
        enc = UMT5Encoder(T5Config())
    sd = enc.state_dict()
    assert list(sd) == list(layout)
    for key, spec in layout.items():
        assert list(sd[key].shape) == spec["shape"], key
    assert sum(t.numel() for t in sd.values()) == 5_680_910_336
    assert not list(enc.buffers())


def test_relative_position_bucket_table():
    t, _ = load_fixture("umt5")
    offsets = t["expected.rel_bucket_offsets"]
    assert offsets.tolist() == list(range(-511, 512))
    assert torch.equal(relative_position_bucket(offsets), t["expected.rel_bucket_for_offset"])
    # FORMATS.md section 5 closed form, spot checks
    b = relative_position_bucket(torch.tensor([0, 1, 7, -7, 8, 16, 127, 128, -1000]))
    assert b.tolist()[:4] == [0, 17, 23, 7] and b.tolist()[-1] == 15


def test_encoder_output(fixture):
    enc, t, _ = fixture
    with torch.no_grad():
        out = enc(t["input.ids"], t["input.mask"])
    torch.testing.assert_close(out, t["expected.encoder_output"], atol=ATOL, rtol=RTOL)


def test_returned_embedding_zeroes_rows_past_prompt(fixture):
    enc, t, sidecar = fixture
    emb = encode_text(enc, t["input.ids"], t["input.mask"])
    torch.testing.assert_close(emb, t["expected.returned_embedding"], atol=ATOL, rtol=RTOL)
    for row, n in enumerate(sidecar["config"]["lengths"]):
        assert torch.count_nonzero(emb[row, n:]) == 0
        assert torch.all(emb[row, :n].abs().sum(-1) > 0)


def test_meta_build_assign_load_then_move(fixture):
    _, t, sidecar = fixture
    with torch.device("meta"):
        enc = UMT5Encoder(_fixture_config(sidecar))
    enc.load_state_dict(subdict(t, "weights."), strict=True, assign=True)
    enc = enc.to("cpu")
    emb = encode_text(enc, t["input.ids"], t["input.mask"])
    torch.testing.assert_close(emb, t["expected.returned_embedding"], atol=ATOL, rtol=RTOL)


def test_bfloat16_weights(fixture):
    _, t, sidecar = fixture
    enc = UMT5Encoder(_fixture_config(sidecar))
    enc.load_state_dict(subdict(t, "weights."))
    enc = enc.to(torch.bfloat16)
    emb = encode_text(enc, t["input.ids"], t["input.mask"])
    assert emb.dtype == torch.bfloat16 and torch.isfinite(emb).all()
    assert (emb.float() - t["expected.returned_embedding"]).abs().max() < 0.5


def test_tiny_preset_with_byte_tokenizer():
    from engine.models.tokenizer import load_tokenizer

    preset = PRESETS["tiny"]
    torch.manual_seed(0)
    enc = UMT5Encoder(preset.text).eval()
    ids, mask = load_tokenizer(preset.tokenizer)(["a cat", "a dog on a skateboard"], max_length=preset.text.text_len)
    emb = encode_text(enc, ids, mask)
    assert emb.shape == (2, preset.text.text_len, preset.text.dim)
    assert torch.count_nonzero(emb[0, 6:]) == 0
