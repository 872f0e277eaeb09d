"""Tokenizers: the built-in byte tokenizer, and the clear error when umT5 files are missing."""

from __future__ import annotations

import pytest
import torch

from engine.errors import CheckpointError, ConfigError
from engine.models.tokenizer import BYTES_VOCAB_SIZE, EOS_ID, PAD_ID, clean_text, load_tokenizer


@pytest.fixture
def tok():
    return load_tokenizer("bytes")


def test_bytes_shapes_eos_and_padding(tok):
    ids, mask = tok(["ab", ""], max_length=8)
    assert ids.dtype == mask.dtype == torch.long
    assert ids.shape == mask.shape == (2, 8)
    assert ids[0].tolist() == [3 + ord("a"), 3 + ord("b"), EOS_ID, 0, 0, 0, 0, 0]
    assert mask[0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert ids[1].tolist() == [EOS_ID] + [PAD_ID] * 7
    assert mask[1].tolist() == [1] + [0] * 7


def test_bytes_default_length_is_512(tok):
    ids, mask = tok(["hello"])
    assert ids.shape == (1, 512) and int(mask.sum()) == 6


def test_bytes_truncation_keeps_eos(tok):
    ids, mask = tok(["x" * 100], max_length=10)
    assert ids[0, -1].item() == EOS_ID
    assert ids[0, :9].tolist() == [3 + ord("x")] * 9
    assert mask[0].tolist() == [1] * 10


def test_bytes_unicode_is_utf8(tok):
    ids, mask = tok(["é猫"], max_length=16)
    expected = [3 + b for b in "é猫".encode("utf-8")] + [EOS_ID]
    assert ids[0, : len(expected)].tolist() == expected
    assert int(mask.sum()) == len(expected)
    assert int(ids.max()) < BYTES_VOCAB_SIZE <= 260  # fits the tiny preset's vocabulary
    assert tok.decode(ids[0].tolist()) == "é猫"


def test_bytes_cleaning_and_determinism(tok):
    a = tok(["  a  cat\n\tin &amp;amp; the   rain "], max_length=32)
    b = tok(["a cat in & the rain"], max_length=32)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(tok(["same prompt"])[0], tok(["same prompt"])[0])
    assert clean_text(" x\u00a0 y &lt;b&gt; ") == "x y <b>"


def test_single_string_is_one_row(tok):
    assert tok("hi", max_length=4)[0].shape == (1, 4)


def test_bad_max_length(tok):
    with pytest.raises(ValueError):
        tok(["a"], max_length=0)


def test_umt5_missing_folder_gives_clear_error(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(CheckpointError) as err:
        load_tokenizer("umt5", str(missing))
    msg = str(err.value)
    assert "\n" not in msg and str(missing) in msg and "--tokenizer-path" in msg


def test_umt5_empty_folder_or_no_transformers_gives_clear_error(tmp_path):
    try:
        import transformers  # noqa: F401
    except ImportError:
        expect, paths = "pip install 'turbo-tui[hf]'", (None, str(tmp_path))
    else:
        # an empty folder holds no tokenizer; the HF cache of this machine is not probed
        expect, paths = "--tokenizer-path DIR", (str(tmp_path),)
    for path in paths:
        with pytest.raises(CheckpointError) as err:
            load_tokenizer("umt5", path)
        assert expect in str(err.value) and "\n" not in str(err.value)


def test_unknown_kind():
    with pytest.raises(ConfigError):
        load_tokenizer("sentencepiece")
