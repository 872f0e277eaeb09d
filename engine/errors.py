"""One error hierarchy for the whole project, with messages meant for people.

Every error raised on purpose by turbo-tui derives from :class:`TurboError`; its
``str()`` is one line that names the problem and, where there is one, the fix.
UIs catch ``TurboError`` per turn and keep running.  This module imports nothing
heavy so that the UI layers can use it.
"""

from __future__ import annotations


class TurboError(Exception):
    """Base class: a one-line, human-readable message."""


class ConfigError(TurboError):
    """The configuration file or a command-line flag is wrong."""


class ValidationError(TurboError, ValueError):
    """A per-turn parameter is out of range.  Names the field, the value and what is allowed."""

    def __init__(self, field: str, value: object, allowed: str):
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}={value!r} is not allowed: {allowed}")


class CheckpointError(TurboError):
    """A checkpoint file is missing, truncated, of the wrong kind or of the wrong model."""

    def __init__(self, path: object, problem: str, fix: str | None = None):
        self.path = str(path)
        self.problem = problem
        msg = f"{self.path}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


class EngineError(TurboError):
    """A turn failed inside the engine (for example out of memory); the engine stays usable."""


class OutOfMemory(EngineError):
    """The device ran out of memory during a turn."""


class Cancelled(TurboError):
    """The turn was cancelled between steps."""

    def __init__(self, msg: str = "turn cancelled"):
        super().__init__(msg)


class SessionError(TurboError):
    """The session store is corrupt, foreign, or an operation on it failed."""
