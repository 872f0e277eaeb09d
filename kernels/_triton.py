"""Triton where it imports: ``triton``, ``tl``, ``libdevice`` and ``HAS_TRITON`` for the kernel files.

CPU-only machines may lack triton; there the names are None and every launcher runs its
plain-torch reference.  Nothing compiles at import.
"""

from __future__ import annotations

try:
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover - depends on the machine
    triton = None
    tl = None
    HAS_TRITON = False

libdevice = None  # int8's and SLA's rounding (rint); without it those two files run their references
if HAS_TRITON:
    try:
        from triton.language.extra import libdevice
    except ImportError:  # pragma: no cover - depends on the Triton build
        pass

__all__ = ["HAS_TRITON", "libdevice", "tl", "triton"]
