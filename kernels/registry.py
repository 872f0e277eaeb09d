"""Which attention and linear backends can run on this machine, and why not.

Attention: ``original`` (dense torch SDPA), ``sla`` (Triton SLA), ``sagesla`` (Triton SageSLA:
int8 Q·K^T), ``spargeattn`` (SageSLA on the optional SpargeAttn package, ``spas_sage_attn``).
Linear: ``bf16`` (torch), ``int8`` (Triton W8A8).  A Triton backend that is not usable still runs
through its plain-torch reference (sla, sagesla -> the SLA reference; int8 -> the int8
reference), so the engine works everywhere; "usable" means its fast path runs here.
``spargeattn`` has no such fallback: the engine refuses it where it is not usable, with the
reason given here.  Nothing here touches CUDA at import; each call looks again.
"""

from __future__ import annotations

import contextlib

import torch

ATTENTION_BACKENDS = ("original", "sla", "sagesla", "spargeattn")
LINEAR_BACKENDS = ("bf16", "int8")


def _triton_reason() -> str | None:
    """None when triton imports, else why not."""
    try:
        import triton  # noqa: F401
    except ImportError as e:
        return f"triton not importable ({e})"
    return None


def _cuda_reason(min_major: int) -> str | None:
    """None when a CUDA GPU of compute capability >= min_major.0 is present, else why not."""
    if not torch.cuda.is_available():
        return "no CUDA GPU (CPU runs the plain-torch reference)"
    major, minor = torch.cuda.get_device_capability()
    if major < min_major:
        return f"compute capability {major}.{minor} < {min_major}.0"
    return None


def available_backends() -> dict[str, tuple[bool, str]]:
    """name -> (usable, reason) for every attention and linear backend (see module docstring)."""
    out: dict[str, tuple[bool, str]] = {}
    cuda8 = _cuda_reason(8)
    trit = _triton_reason()
    gpu_name = torch.cuda.get_device_name() if cuda8 is None else ""

    out["original"] = (True, "torch scaled_dot_product_attention")
    kernel = ""
    if cuda8 is None and trit is None:
        from kernels import sla

        kernel = (", TMA kernel" if _cuda_reason(9) is None and sla.TensorDescriptor is not None
                  else ", pointer kernel (the faster TMA kernel needs a Hopper GPU and Triton >= 3.3)")
    for name, what in (("sla", "Triton block-sparse + linear attention"),
                       ("sagesla", "Triton SLA with int8 Q·K^T")):
        why = cuda8 or trit
        out[name] = (why is None, f"{what} on {gpu_name}{kernel}" if why is None else why)

    from kernels import sparge

    why = sparge.unavailable_reason()
    if why is None:
        blocks = "x".join(str(b) for b in sparge.package_blocks(torch.cuda.current_device()))
        out["spargeattn"] = (True, f"SpargeAttn block-sparse SageAttention-2 kernel on {gpu_name} "
                                   f"(blocks {blocks}), our block map and linear branch")
    else:
        out["spargeattn"] = (False, why)

    out["bf16"] = (True, "torch.nn.functional.linear")
    why = cuda8 or trit
    out["int8"] = (why is None, f"Triton W8A8 block-scaled GEMM on {gpu_name}" if why is None else why)
    return out


def attention_backends() -> dict[str, tuple[bool, str]]:
    """The attention subset of :func:`available_backends`."""
    allb = available_backends()
    return {k: allb[k] for k in ATTENTION_BACKENDS}


def linear_backends() -> dict[str, tuple[bool, str]]:
    """The linear subset of :func:`available_backends`."""
    allb = available_backends()
    return {k: allb[k] for k in LINEAR_BACKENDS}


@contextlib.contextmanager
def reference_only():
    """Inside this block every kernel launcher runs its plain-torch reference, also on CUDA (the
    engine's fused DiT path is off too, since it asks ``kernels.norms.triton_usable``).  For
    benchmarks and tests that compare the fast path with the plain reference on the same GPU.
    Not thread-safe: it flips each kernel module's ``HAS_TRITON`` for the duration."""
    import kernels.int8
    import kernels.norms
    import kernels.sla
    import kernels.sparge
    import kernels.vae

    mods = (kernels.int8, kernels.norms, kernels.sla, kernels.vae)
    saved = [m.HAS_TRITON for m in mods]
    saved_sparge = kernels.sparge.REFERENCE_ONLY
    try:
        for m in mods:
            m.HAS_TRITON = False
        kernels.sparge.REFERENCE_ONLY = True
        yield
    finally:
        for m, v in zip(mods, saved):
            m.HAS_TRITON = v
        kernels.sparge.REFERENCE_ONLY = saved_sparge
