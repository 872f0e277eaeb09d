"""The UI layers never load torch or triton: they talk to the engine through engine.api only."""

from __future__ import annotations

import subprocess
import sys

import pytest

UI_MODULES = ["engine.api", "turbo_tui.cli", "turbo_tui.config", "turbo_tui.app", "turbo_tui.repl", "sessions"]


@pytest.mark.parametrize("module", UI_MODULES)
def test_ui_modules_do_not_import_torch(module):
    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        "bad = [m for m in ('torch', 'triton') if m in sys.modules]; "
        "print(','.join(bad) or 'clean')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean", f"importing {module} loaded {out.stdout.strip()}"
