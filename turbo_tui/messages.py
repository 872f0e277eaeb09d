"""Messages that workers post to the app.  Workers never touch widgets; they post these.

Each carries plain data from :mod:`engine.api` (no torch objects).
"""

from __future__ import annotations

from textual.message import Message

from engine.api import Engine, EngineInfo, ProgressEvent, TurnRequest, TurnResult
from engine.errors import TurboError


class EngineLoading(Message):
    """The engine started loading (``event`` is the engine's ``load`` progress, if any)."""

    def __init__(self, event: ProgressEvent | None = None) -> None:
        super().__init__()
        self.event = event


class EngineReady(Message):
    """The engine is loaded; ``engine`` is the :class:`engine.api.Engine` handle the app keeps."""

    def __init__(self, engine: Engine, info: EngineInfo, load_s: float) -> None:
        super().__init__()
        self.engine = engine
        self.info = info
        self.load_s = load_s


class EngineFailed(Message):
    """The engine could not be loaded; the app stays open to show why."""

    def __init__(self, error: TurboError) -> None:
        super().__init__()
        self.error = error


class GenerationProgress(Message):
    def __init__(self, turn_id: int, event: ProgressEvent) -> None:
        super().__init__()
        self.turn_id = turn_id
        self.event = event


class GenerationFinished(Message):
    """The turn made its videos and they are recorded; ``replay_match`` is set for replays."""

    def __init__(self, turn_id: int, request: TurnRequest, result: TurnResult,
                 replay_match: bool | None = None) -> None:
        super().__init__()
        self.turn_id = turn_id
        self.request = request
        self.result = result
        self.replay_match = replay_match


class GenerationFailed(Message):
    """The turn ended without a video: ``cancelled`` when Esc stopped it, else ``error`` says why."""

    def __init__(self, turn_id: int, request: TurnRequest, error: TurboError, cancelled: bool = False) -> None:
        super().__init__()
        self.turn_id = turn_id
        self.request = request
        self.error = error
        self.cancelled = cancelled


class ExportFinished(Message):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path


class ExportFailed(Message):
    def __init__(self, error: TurboError) -> None:
        super().__init__()
        self.error = error
