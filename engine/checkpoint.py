"""Reading checkpoint files safely, and saying clearly what is wrong with a bad one.

* ``.safetensors`` is read with safetensors; anything else with
  ``torch.load(weights_only=True, mmap=True)`` — never an unrestricted unpickle.
* Every failure becomes a :class:`~engine.errors.CheckpointError` naming the file,
  what was expected and what was found.
* :func:`describe_state_dict` recognises the published layouts from their keys, so
  "an I2V file given as T2V" reads as such instead of as a list of missing keys.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Mapping

import torch

from engine.errors import CheckpointError

StateDict = dict[str, torch.Tensor]

# Wrappers some training exports use; the published files have none (FORMATS.md section 1).
_WRAPPER_KEYS = ("state_dict", "model", "module", "net")
_PREFIXES = ("net.", "module.", "model.")


def read_state_dict(path: str | os.PathLike, what: str = "a checkpoint") -> StateDict:
    """Load a mapping name -> tensor from ``path`` without executing code from it.

    ``what`` names what the file should be, with its article ("a VAE checkpoint").
    """
    p = Path(os.path.expanduser(str(path)))
    if not p.exists():
        raise CheckpointError(p, f"file not found, expected {what}", "check the path in your config or flags")
    if p.is_dir():
        raise CheckpointError(p, f"is a folder, expected {what} (.pth or .safetensors)")
    if p.stat().st_size == 0:
        raise CheckpointError(p, f"is empty, expected {what}", "download it again")
    if p.suffix == ".safetensors":
        sd = _read_safetensors(p, what)
    else:
        sd = _read_torch(p, what)
    return _unwrap(sd, p, what)


def _read_safetensors(p: Path, what: str) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(p))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(p, f"not a readable safetensors file ({_short(e)}), expected {what}",
                              "the file may be truncated: download it again") from None


def _read_torch(p: Path, what: str) -> StateDict:
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses anything but tensors and plain containers.
        raise CheckpointError(p, f"not a plain tensor file (refused to unpickle: {_short(e)}), expected {what}",
                              "only weight files are loaded, never code") from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
        msg = str(e)
        if "mmap can only be used" in msg:  # not a zip-format torch.save file at all
            raise CheckpointError(p, f"not a PyTorch checkpoint (not a torch.save zip archive), expected {what}",
                                  "pass a .pth or .safetensors weight file") from None
        if "zip archive" in msg or "central directory" in msg or isinstance(e, (zipfile.BadZipFile, EOFError)):
            raise CheckpointError(p, f"truncated or not a PyTorch checkpoint ({_short(e)}), expected {what}",
                                  "download it again") from None
        raise CheckpointError(p, f"cannot read it as {what}: {_short(e)}") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(p, f"holds a {type(obj).__name__}, expected a state dict of tensors")
    return dict(obj)


def _unwrap(sd: Mapping, p: Path, what: str) -> StateDict:
    for key in _WRAPPER_KEYS:
        if set(sd) == {key} or (key in sd and isinstance(sd[key], Mapping) and not _all_tensors(sd)):
            if isinstance(sd[key], Mapping):
                sd = sd[key]
                break
    out: StateDict = {}
    for name, value in sd.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(p, f"entry '{name}' is a {type(value).__name__}, expected tensors only")
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        out[name.replace("_checkpoint_wrapped_module.", "")] = value
    if not out:
        raise CheckpointError(p, f"holds no tensors, expected {what}")
    return out


def _all_tensors(sd: Mapping) -> bool:
    return all(isinstance(v, torch.Tensor) for v in sd.values())


def _short(e: BaseException, limit: int = 120) -> str:
    s = " ".join(str(e).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def describe_state_dict(sd: Mapping[str, torch.Tensor]) -> str:
    """A short human description of what a state dict looks like, from its keys."""
    if "patch_embedding.weight" in sd:
        w = sd["patch_embedding.weight"]
        dim = w.shape[0]
        # Linear [dim, in_dim * patch volume]: Wan's (1, 2, 2) patch gives 64 / 144, the tiny
        # models' (1, 1, 1) gives 16 / 36; a Conv3d-shaped weight has in_dim on axis 1.
        in_dim = {64: 16, 144: 36}.get(w.shape[1], w.shape[1]) if w.ndim == 2 else w.shape[1]
        layers = 1 + max((int(k.split(".")[1]) for k in sd if k.startswith("blocks.")), default=-1)
        size = {1536: "1.3B", 5120: "14B"}.get(dim, f"dim {dim}")
        kind = "I2V" if in_dim == 36 else "T2V" if in_dim == 16 else f"in_dim {in_dim}"
        quant = any(k.endswith(".int8_weight") for k in sd)
        sla = any(".attn_op.local_attn.proj_l." in k for k in sd)
        parts = [f"a Wan {kind} DiT ({size}, {layers} layers"]
        parts.append(", int8-quantized" if quant else ", unquantized")
        parts.append(", with SLA proj_l)" if sla else ", no SLA proj_l)")
        return "".join(parts)
    if "token_embedding.weight" in sd:
        v, d = sd["token_embedding.weight"].shape
        return f"a umT5 text encoder (vocab {v}, dim {d})"
    if any(k.startswith("encoder.conv1.") for k in sd) and any(k.startswith("decoder.") for k in sd):
        return "a Wan video VAE"
    keys = list(sd)[:3]
    return f"an unknown model ({len(sd)} tensors, first keys {keys})"


def check_layout(
    path: str | os.PathLike,
    sd: Mapping[str, torch.Tensor],
    expected: Mapping[str, tuple[int, ...]],
    what: str,
) -> None:
    """Raise one clear CheckpointError if ``sd`` does not have exactly ``expected``'s keys and shapes."""
    missing = [k for k in expected if k not in sd]
    extra = [k for k in sd if k not in expected]
    if missing or extra:
        found = describe_state_dict(sd)
        detail = []
        if missing:
            detail.append(f"{len(missing)} keys missing (e.g. {missing[0]})")
        if extra:
            detail.append(f"{len(extra)} unexpected (e.g. {extra[0]})")
        raise CheckpointError(path, f"expected {what}, found {found}: " + "; ".join(detail),
                              "check --model and the checkpoint flags")
    for k, shape in expected.items():
        got = tuple(sd[k].shape)
        if got != tuple(shape):
            raise CheckpointError(
                path,
                f"expected {what}, found {describe_state_dict(sd)}: '{k}' has shape {list(got)}, expected {list(shape)}",
                "check --model and the checkpoint flags",
            )


def file_summary(path: str | os.PathLike | None) -> dict[str, object] | None:
    """{"path", "name", "size"} for recording which files a turn used."""
    if not path:
        return None
    p = Path(os.path.expanduser(str(path)))
    try:
        size = p.stat().st_size
    except OSError:
        size = None
    return {"path": str(p), "name": p.name, "size": size}
