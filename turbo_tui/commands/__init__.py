"""Implementations of the ``turbo-tui`` subcommands (imported lazily by turbo_tui.cli)."""
