"""The one loading module: checkpoint files -> ready models, and random models of the same shapes.

Everything that renames, reshapes, casts or quantizes weights happens here, after
:func:`engine.checkpoint.read_state_dict` has read the file (mmap'd, never executing code) and
before a strict ``load_state_dict(assign=True)`` into a model built on the meta device — so a
14B model never exists twice in memory.

DiT layouts are recognised from the keys themselves (FORMATS.md section 2):

* quantized: block linears carry ``int8_weight``/``scale`` instead of ``weight`` (``-quant`` files);
* SLA: every self-attention carries ``attn_op.local_attn.proj_l`` (all published Turbo files).

and reconciled with what was asked for:

=====================  =======================  =====================================================
file                   asked                    result
=====================  =======================  =====================================================
quantized              ``quant_linear=False``   Int8Linear anyway: the file has no float weights
                                                (noted in ``model.load_notes``)
unquantized            ``quant_linear=True``    block linears quantized now (the reference's rule)
with proj_l            ``attention=original``   proj_l is ignored (dense attention)
without proj_l         ``sla`` / ``sagesla``    CheckpointError: SLA needs the trained proj_l
=====================  =======================  =====================================================

Any mismatch raises one :class:`~engine.errors.CheckpointError` naming the file, what was
expected and what was found.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from typing import Callable, Mapping

import torch
from torch import nn

from engine.checkpoint import check_layout, describe_state_dict, read_state_dict
from engine.configs import DiTConfig, T5Config, VAEConfig
from engine.errors import CheckpointError
from engine.models.attention import has_proj_l
from engine.models.int8_linear import Int8Linear
from engine.models.wan_dit import WanDiT
from kernels.int8 import quantize_weight

log = logging.getLogger(__name__)


PROJ_L = ".self_attn.attn_op.local_attn.proj_l."
# Norm tensors that TurboDiffusion's fast norms hold in float32 (FORMATS.md section 1, "certain").
_FAST_NORM_SUFFIXES = (".norm_q.weight", ".norm_k.weight", ".norm3.weight", ".norm3.bias")
_SIZE_NAMES = {1536: "1.3B", 5120: "14B"}

DTypeLike = torch.dtype | str
DeviceLike = torch.device | str


# ---------------------------------------------------------------------------
# Dtype rule shared by loading, random building and the expected layouts


def _as_dtype(dtype: DTypeLike) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16,
                "fp16": torch.float16, "float32": torch.float32, "fp32": torch.float32}[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype '{dtype}' (bfloat16, float16 or float32)") from None


def tensor_dtype(name: str, t: torch.Tensor, dtype: torch.dtype, fast_norm: bool = True) -> torch.dtype:
    """The dtype a DiT tensor is held in: int8 weights stay int8, int8 scales float32, fast-norm
    weights float32; every other float tensor the model ``dtype``."""
    if not t.is_floating_point():
        return t.dtype
    if name.endswith(".scale") or (fast_norm and name.endswith(_FAST_NORM_SUFFIXES)):
        return torch.float32
    return dtype


def _cast_module_(module: nn.Module, rule: Callable[[str, torch.Tensor], torch.dtype]) -> None:
    """Cast every parameter and buffer in place of the module tree by ``rule(full_name, tensor)``.

    Used on the meta device (free) so that ``to_empty`` then allocates the final dtypes once.
    """
    for mod_name, mod in module.named_modules():
        prefix = mod_name + "." if mod_name else ""
        for name, p in list(mod._parameters.items()):
            if p is not None and p.dtype != rule(prefix + name, p):
                mod._parameters[name] = nn.Parameter(p.detach().to(rule(prefix + name, p)), requires_grad=False)
        for name, b in list(mod._buffers.items()):
            if b is not None and b.dtype != rule(prefix + name, b):
                mod._buffers[name] = b.to(rule(prefix + name, b))


def _meta_dit(cfg: DiTConfig, attention: str, quant_linear: bool, fast_norm: bool, dtype: torch.dtype) -> WanDiT:
    with torch.device("meta"):
        model = WanDiT(cfg, attention=attention, quant_linear=quant_linear, fast_norm=fast_norm)
    _cast_module_(model, lambda n, t: tensor_dtype(n, t, dtype, fast_norm))
    return model


def expected_dit_keys(
    cfg: DiTConfig, attention: str = "sla", quant_linear: bool = False, *,
    fast_norm: bool = True, dtype: DTypeLike = torch.bfloat16,
) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """{key: (shape, dtype)} of a DiT state dict, in ``state_dict()`` order, built on the meta device.

    The defaults give the published layouts (bf16, fast-norm float32 weights; FORMATS.md section 1).
    """
    model = _meta_dit(cfg, attention, quant_linear, fast_norm, _as_dtype(dtype))
    return {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------
# DiT


def _describe_cfg(cfg: DiTConfig) -> str:
    kind = "I2V" if cfg.is_i2v else "T2V"
    size = _SIZE_NAMES.get(cfg.dim, f"dim {cfg.dim}")
    return f"a Wan {kind} DiT ({size}, {cfg.num_layers} layers)"


def _flatten_conv_patch_embedding(sd: dict[str, torch.Tensor]) -> None:
    """Wan's Conv3d patch embedding [dim, in, kt, kh, kw] -> the Linear [dim, in*kt*kh*kw] used here.

    Row-major flattening orders the features (c, kt, kh, kw), which is the patchify order.
    """
    w = sd.get("patch_embedding.weight")
    if w is not None and w.ndim == 5:
        sd["patch_embedding.weight"] = w.reshape(w.shape[0], -1)


def _check_dtypes(path: os.PathLike | str, sd: Mapping[str, torch.Tensor], what: str) -> None:
    for k, t in sd.items():
        if k.endswith(".int8_weight"):
            if t.dtype != torch.int8:
                raise CheckpointError(path, f"expected {what}: '{k}' should be int8, found {t.dtype}")
        elif not t.is_floating_point():
            raise CheckpointError(path, f"expected {what}: '{k}' should be a float tensor, found {t.dtype}")


def load_dit(
    path: str | os.PathLike,
    cfg: DiTConfig,
    *,
    attention: str = "sla",
    quant_linear: bool = False,
    fast_norm: bool = True,
    device: DeviceLike = "cpu",
    dtype: DTypeLike = torch.bfloat16,
) -> WanDiT:
    """Load a Wan DiT file (.pth or .safetensors) into a :class:`WanDiT` on ``device``.

    Layouts are detected from the keys (see the module docstring).  Float tensors are cast to
    ``dtype`` (int8 weights, their scales and the fast-norm weights keep their structural dtypes).
    ``model.load_notes`` lists what was adapted (e.g. "quantized file: int8 linears").
    """
    dtype = _as_dtype(dtype)
    device = torch.device(device)
    what = _describe_cfg(cfg)
    sd = read_state_dict(path, what)
    _flatten_conv_patch_embedding(sd)
    file_quant = any(k.endswith(".int8_weight") for k in sd)
    file_sla = any(PROJ_L in k for k in sd)

    # 1. the file must be this model in one of its layouts
    file_layout = _meta_dit(cfg, "sla" if file_sla else "original", file_quant, fast_norm, dtype)
    check_layout(path, sd, {k: tuple(v.shape) for k, v in file_layout.state_dict().items()}, what)
    _check_dtypes(path, sd, what)
    del file_layout

    # 2. reconcile with what was asked for
    notes: list[str] = []
    if file_sla and not has_proj_l(attention):
        sd = {k: v for k, v in sd.items() if PROJ_L not in k}
        notes.append(f"attention '{attention}': the file's SLA proj_l weights are not used")
    elif not file_sla and has_proj_l(attention):
        raise CheckpointError(
            path, f"attention '{attention}' needs the SLA proj_l weights, but the file is {describe_state_dict(sd)}",
            "use --attention original for a dense checkpoint, or a TurboDiffusion file",
        )
    quant = file_quant or quant_linear
    if file_quant and not quant_linear:
        notes.append("quantized (-quant) file: it holds only int8 weights, so the block linears run as int8")
    elif quant_linear and not file_quant:
        notes.append("unquantized file: block linears quantized to int8 at load")

    # 3. build on meta, convert tensor by tensor on the device, assign
    model = _meta_dit(cfg, attention, quant, fast_norm, dtype)
    target = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for name, ref in target.items():
        if name.endswith((".int8_weight", ".scale")) and not file_quant:
            base = name.rsplit(".", 1)[0]
            if base + ".int8_weight" not in out:
                # Quantize the weight as the model dtype holds it, like modify_model.py does.
                w = sd[base + ".weight"].to(device=device, dtype=dtype)
                out[base + ".int8_weight"], out[base + ".scale"] = quantize_weight(w)
                del w
            continue
        out[name] = sd[name].to(device=device, dtype=ref.dtype)
    model.load_state_dict(out, strict=True, assign=True)
    del out
    model.requires_grad_(False)
    model.eval()
    _fuse_for_device(model, device)
    model.load_notes = notes
    for note in notes:
        log.info("%s: %s", path, note)
    return model


def _fuse_for_device(model: WanDiT, device: torch.device) -> None:
    """On CUDA, q/k/v of every self-attention share one [3C, C] weight (one GEMM; names unchanged).
    CPU models stay unfused so the CPU path is exactly the reference's op sequence."""
    if device.type == "cuda":
        model.fuse_qkv_()


# ---------------------------------------------------------------------------
# VAE and text encoder


def _load_plain(path, model: nn.Module, what: str, device: DeviceLike, dtype: DTypeLike) -> nn.Module:
    """Strict, assigning load of a float-only model built on the meta device."""
    dtype, device = _as_dtype(dtype), torch.device(device)
    sd = read_state_dict(path, what)
    expected = model.state_dict()
    check_layout(path, sd, {k: tuple(v.shape) for k, v in expected.items()}, what)
    _check_dtypes(path, sd, what)
    out = {k: sd[k].to(device=device, dtype=dtype if ref.is_floating_point() else ref.dtype)
           for k, ref in expected.items()}
    model.load_state_dict(out, strict=True, assign=True)
    _rebuild_non_persistent_buffers(model, device, [n for n, b in model.named_buffers() if b.is_meta])
    model.requires_grad_(False)
    model.eval()
    return model


def _rebuild_non_persistent_buffers(model: nn.Module, device: torch.device, names: list[str]) -> None:
    """Non-persistent buffers (constants computed in ``__init__``) are not in the file, so after a
    meta build they hold no values.  A model with such buffers defines
    ``init_non_persistent_buffers_(device)`` to recompute them."""
    if not names:
        return
    hook = getattr(model, "init_non_persistent_buffers_", None)
    if hook is None:
        raise RuntimeError(f"{type(model).__name__} has buffers outside its state dict ({names[0]}, ...): "
                           "give it init_non_persistent_buffers_(device) so it can be built on meta")
    hook(device)


def load_vae(path: str | os.PathLike, cfg: VAEConfig, device: DeviceLike = "cpu",
             dtype: DTypeLike = torch.float32) -> nn.Module:
    """Load ``Wan2.1_VAE.pth`` (the state dict of the reference's ``WanVAE_``) into ``WanVAE(cfg)``."""
    from engine.models.wan_vae import WanVAE

    with torch.device("meta"):
        model = WanVAE(cfg)
    return _load_plain(path, model, f"a Wan video VAE (dim {cfg.dim}, z_dim {cfg.z_dim})", device, dtype)


def load_text_encoder(path: str | os.PathLike, cfg: T5Config, device: DeviceLike = "cpu",
                      dtype: DTypeLike = torch.bfloat16) -> nn.Module:
    """Load ``models_t5_umt5-xxl-enc-bf16.pth`` into ``UMT5Encoder(cfg)``."""
    from engine.models.umt5 import UMT5Encoder

    with torch.device("meta"):
        model = UMT5Encoder(cfg)
    what = f"a umT5 text encoder (vocab {cfg.vocab_size}, dim {cfg.dim}, {cfg.num_layers} layers)"
    return _load_plain(path, model, what, device, dtype)


# ---------------------------------------------------------------------------
# Random weights (the built-in tiny models, tests, and benchmarks at real shapes)


def _name_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _random_like(name: str, shape: torch.Size, seed: int, device: torch.device) -> torch.Tensor:
    """A float32 tensor for parameter ``name``: drawn from a generator keyed by (seed, name).

    Scales: fan-in for matrices and convolutions (std 1/sqrt(fan_in)); norm weights and gains
    around 1; biases small; modulations randn/sqrt(dim) (the reference's own modulation init).
    Nothing is zero, so the head and proj_l are exercised too (the reference zeroes them).
    """
    gen = torch.Generator(device=device)
    gen.manual_seed(_name_seed(seed, name))
    x = torch.randn(shape, generator=gen, device=device, dtype=torch.float32)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "modulation":
        return x / math.sqrt(shape[-1])
    if leaf == "bias":
        return x * 0.02
    if leaf == "gamma" or (leaf == "weight" and len(shape) == 1):  # norm gains
        return 1.0 + 0.1 * x
    if len(shape) >= 2:
        return x / math.sqrt(math.prod(shape[1:]))
    return x * 0.02


@torch.no_grad()
def init_random_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every state-dict tensor of ``module`` deterministically, keyed by its name.

    Construction order does not matter.  ``Int8Linear`` buffers are the quantization of the float
    weight the same name would get (``X.weight``), so a quantized random model equals the
    quantized unquantized one.  Integer tensors of other kinds are left alone.
    """
    quant_done: set[str] = set()
    for name, t in module.state_dict(keep_vars=True).items():
        if name.endswith((".int8_weight", ".scale")):
            base = name.rsplit(".", 1)[0]
            owner = module.get_submodule(base)
            if isinstance(owner, Int8Linear):
                if base not in quant_done:
                    w = _random_like(base + ".weight", owner.int8_weight.shape, seed, owner.int8_weight.device)
                    q, s = quantize_weight(w.to(owner.bias.dtype if owner.bias is not None else torch.bfloat16))
                    owner.int8_weight.copy_(q)
                    owner.scale.copy_(s)
                    quant_done.add(base)
                continue
        if not t.is_floating_point():
            continue
        t.copy_(_random_like(name, t.shape, seed, t.device))
    return module


def _materialize(model: nn.Module, device: DeviceLike, seed: int) -> nn.Module:
    model = model.to_empty(device=torch.device(device))
    init_random_(model, seed)
    model.requires_grad_(False)
    model.eval()
    return model


def build_random_dit(
    cfg: DiTConfig, seed: int = 0, *, attention: str = "sla", quant_linear: bool = False,
    fast_norm: bool = True, device: DeviceLike = "cpu", dtype: DTypeLike = torch.float32,
) -> WanDiT:
    """A DiT with deterministic random weights, allocated once directly on ``device`` in its final
    dtypes (works for the 14B shapes on a GPU).  Values depend on (seed, name, device)."""
    model = _meta_dit(cfg, attention, quant_linear, fast_norm, _as_dtype(dtype))
    model = _materialize(model, device, seed)
    _fuse_for_device(model, torch.device(device))
    model.load_notes = [f"random weights (seed {seed})"]
    return model


def build_random_vae(cfg: VAEConfig, seed: int = 0, *, device: DeviceLike = "cpu",
                     dtype: DTypeLike = torch.float32) -> nn.Module:
    """``WanVAE(cfg)`` with deterministic random weights."""
    from engine.models.wan_vae import WanVAE

    return _build_random_plain(WanVAE, cfg, seed, device, dtype)


def build_random_text_encoder(cfg: T5Config, seed: int = 0, *, device: DeviceLike = "cpu",
                              dtype: DTypeLike = torch.float32) -> nn.Module:
    """``UMT5Encoder(cfg)`` with deterministic random weights."""
    from engine.models.umt5 import UMT5Encoder

    return _build_random_plain(UMT5Encoder, cfg, seed, device, dtype)


def _build_random_plain(cls, cfg, seed: int, device: DeviceLike, dtype: DTypeLike) -> nn.Module:
    dtype, device = _as_dtype(dtype), torch.device(device)
    with torch.device("meta"):
        model = cls(cfg)
    _cast_module_(model, lambda n, t: dtype if t.is_floating_point() else t.dtype)
    persistent = set(model.state_dict())
    non_persistent = [n for n, _ in model.named_buffers() if n not in persistent]
    model = _materialize(model, device, seed)
    _rebuild_non_persistent_buffers(model, device, non_persistent)
    return model
