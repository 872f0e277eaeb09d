"""Tokenizers for the text encoder: the real google/umt5-xxl one and a built-in byte one.

Both are called as ``tok(texts, max_length=512) -> (ids, mask)``, two LongTensors
``[B, max_length]``: ids end with ``</s>`` (id 1) and are padded with 0; mask is 1 on real
tokens, ``</s>`` included (FORMATS.md section 5).

* ``"umt5"``: google/umt5-xxl through ``transformers.AutoTokenizer``, read only from a local
  folder or the local Hugging Face cache; nothing is downloaded at run time.
* ``"bytes"``: for the tiny built-in models; pad 0, ``</s>`` 1, unk 2, byte b -> 3 + b
  (vocabulary 259), no dependency.

Prompts are cleaned first, as the reference does (``rcm/utils/umt5.py``: ftfy when
installed, HTML unescape twice, whitespace runs -> one space, strip).
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Protocol, Sequence

import torch

from engine.errors import CheckpointError, ConfigError

PAD_ID = 0
EOS_ID = 1
UNK_ID = 2
BYTE_OFFSET = 3
BYTES_VOCAB_SIZE = BYTE_OFFSET + 256

UMT5_NAME = "google/umt5-xxl"
_INSTALL_FIX = "pip install 'turbo-tui[hf]'"
_FOLDER_FIX = (
    f"put the {UMT5_NAME} tokenizer folder (tokenizer.json or spiece.model + tokenizer_config.json) "
    "on this machine and pass --tokenizer-path DIR"
)

_WHITESPACE = re.compile(r"\s+")


class Tokenizer(Protocol):
    def __call__(self, texts: Sequence[str], max_length: int = 512) -> tuple[torch.Tensor, torch.Tensor]: ...


def clean_text(text: str) -> str:
    """The reference's "whitespace" cleaning: ftfy (if installed), HTML unescape twice,
    collapse whitespace, strip."""
    try:
        import ftfy
    except ImportError:  # optional: without it, mojibake is left as is
        pass
    else:
        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return _WHITESPACE.sub(" ", text).strip()


def _as_list(texts: str | Sequence[str]) -> list[str]:
    return [texts] if isinstance(texts, str) else list(texts)


def _check_length(max_length: int) -> None:
    if not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be a positive int, got {max_length!r}")


class ByteTokenizer:
    """UTF-8 bytes as tokens (byte b -> id 3 + b), then ``</s>``; for the tiny models."""

    vocab_size = BYTES_VOCAB_SIZE
    pad_id = PAD_ID
    eos_id = EOS_ID
    unk_id = UNK_ID

    def __call__(self, texts: Sequence[str], max_length: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        _check_length(max_length)
        texts = _as_list(texts)
        ids = torch.full((len(texts), max_length), PAD_ID, dtype=torch.long)
        mask = torch.zeros((len(texts), max_length), dtype=torch.long)
        for row, text in enumerate(texts):
            # truncate the bytes, never the closing </s>
            tokens = [BYTE_OFFSET + b for b in clean_text(text).encode("utf-8")][: max_length - 1]
            tokens.append(EOS_ID)
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            mask[row, : len(tokens)] = 1
        return ids, mask

    def decode(self, ids: Sequence[int]) -> str:
        """Inverse of ``__call__`` for one row (stops at ``</s>``; skips pad and unk)."""
        out = bytearray()
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i >= BYTE_OFFSET:
                out.append(i - BYTE_OFFSET)
        return out.decode("utf-8", errors="replace")


class HFTokenizer:
    """google/umt5-xxl via ``transformers``, with the reference's cleaning and padding."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = len(tokenizer)

    def __call__(self, texts: Sequence[str], max_length: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        _check_length(max_length)
        out = self.tokenizer(
            [clean_text(t) for t in _as_list(texts)],
            padding="max_length",
            truncation=True,
            max_length=max_length,
            add_special_tokens=True,
            return_tensors="pt",
        )
        return out["input_ids"].long(), out["attention_mask"].long()


def _load_umt5(path: str | None) -> HFTokenizer:
    where = UMT5_NAME if path is None else os.path.expanduser(path)
    if path is not None and not Path(where).is_dir():
        raise CheckpointError(where, "tokenizer folder not found", _FOLDER_FIX)
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise CheckpointError(where, "the umT5 tokenizer needs the transformers package", _INSTALL_FIX) from None
    try:
        # local_files_only: read the folder or the local HF cache, never the network.
        tok = AutoTokenizer.from_pretrained(where, local_files_only=True)
    except ImportError as e:  # e.g. sentencepiece missing for a slow-tokenizer folder
        raise CheckpointError(where, f"cannot load the tokenizer ({e})".replace("\n", " "), _INSTALL_FIX) from None
    except (OSError, ValueError) as e:
        problem = "tokenizer files not found in the local Hugging Face cache" if path is None else (
            f"not a usable tokenizer folder ({type(e).__name__})")
        raise CheckpointError(where, problem, _FOLDER_FIX) from None
    return HFTokenizer(tok)


def load_tokenizer(kind: str, path: str | None = None) -> Tokenizer:
    """``kind`` "bytes" (built in) or "umt5" (google/umt5-xxl from ``path`` or the local HF cache).

    Raises :class:`CheckpointError` with the fix when the umT5 files or ``transformers`` are
    missing, :class:`ConfigError` for an unknown kind.
    """
    if kind == "bytes":
        return ByteTokenizer()
    if kind == "umt5":
        return _load_umt5(path)
    raise ConfigError(f"unknown tokenizer '{kind}' (known: bytes, umt5)")
