"""One built-in tiny engine (CPU) per test process, shared by the pipeline, session, app and REPL
tests: loading it is the slow part, and the engine is resident by design.  Tests that change it
(cancel, a patched forward) restore it before they end; nobody closes it."""

from __future__ import annotations

import functools

from engine.api import Engine, LaunchConfig, open_engine


@functools.lru_cache(maxsize=None)
def tiny_engine() -> Engine:
    return open_engine(LaunchConfig(model="tiny", device="cpu"))
