"""The blocking work the app hands to thread workers: load the engine, run a turn.

Each function takes ``post`` (the app's ``post_message``) and reports only through
:mod:`turbo_tui.messages`; none touches a widget.  The engine is reached only
through :mod:`engine.api`, so this module imports no torch either.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from engine.api import Engine, LaunchConfig, ProgressEvent, TurnRequest, open_engine
from engine.errors import Cancelled, EngineError, SessionError, TurboError
from turbo_tui.messages import (
    EngineFailed,
    EngineLoading,
    EngineReady,
    ExportFailed,
    ExportFinished,
    GenerationFailed,
    GenerationFinished,
    GenerationProgress,
)
from turbo_tui.widgets.history import TurnRow

Post = Callable[..., object]


def load_engine(launch: LaunchConfig, post: Post) -> Engine | None:
    """Open the engine; post :class:`EngineReady` (or :class:`EngineFailed`) and return it."""
    t0 = time.perf_counter()
    post(EngineLoading())
    try:
        engine = open_engine(launch, on_progress=lambda ev: post(EngineLoading(ev)))
        info = engine.info()
    except TurboError as e:
        post(EngineFailed(e))
        return None
    except Exception as e:  # an engine bug: show it instead of crashing the app
        post(EngineFailed(EngineError(f"the engine failed to load: {type(e).__name__}: {e}")))
        return None
    post(EngineReady(engine, info, time.perf_counter() - t0))
    return engine


def run_turn(session, engine: Engine, turn_id: int, request: TurnRequest, post: Post,
             replay_of: TurnRow | None = None) -> None:
    """Generate the turn ``turn_id`` (already recorded as running) and record how it ended."""
    def progress(event: ProgressEvent) -> None:
        post(GenerationProgress(turn_id, event))

    output_dir = str(session.output_dir_for(turn_id))
    try:
        result = engine.generate(request, output_dir, progress)
    except Cancelled as e:
        _fail(session, turn_id, str(e), "cancelled")
        post(GenerationFailed(turn_id, request, e, cancelled=True))
        return
    except TurboError as e:
        _fail(session, turn_id, str(e), "failed")
        post(GenerationFailed(turn_id, request, e))
        return
    except Exception as e:  # an engine bug: keep the record honest and the app alive
        err = EngineError(f"the turn failed: {type(e).__name__}: {e}")
        _fail(session, turn_id, str(err), "failed")
        post(GenerationFailed(turn_id, request, err))
        return
    try:
        session.finish_turn(turn_id, result)
        matches = None
        if replay_of is not None:
            from sessions.media import videos_match

            matches = bool(replay_of.status == "done" and videos_match(replay_of.video_paths, result.video_paths))
            session.set_replay_match(turn_id, matches)
    except (SessionError, OSError) as e:
        err = SessionError(f"the video was made but could not be recorded: {e}")
        post(GenerationFailed(turn_id, request, err))
        return
    post(GenerationFinished(turn_id, request, result, matches))


def export(session, out_dir: Path, post: Post) -> None:
    """Export the whole session as a .zip under ``out_dir``."""
    from sessions.export import export_session

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{session.name}-{time.strftime('%Y%m%d-%H%M%S')}.zip"
        path = export_session(session, target)
    except TurboError as e:
        post(ExportFailed(e))
        return
    except OSError as e:
        post(ExportFailed(SessionError(f"export failed: {e}")))
        return
    post(ExportFinished(str(path)))


def _fail(session, turn_id: int, text: str, status: str) -> None:
    try:
        session.fail_turn(turn_id, text, status=status)
    except SessionError:
        pass  # the session was closed under us (the app is quitting); it recovers on next open


def record_to_row(rec) -> TurnRow:
    """A session :class:`~sessions.store.TurnRecord` as a history row."""
    try:
        request = rec.turn_request()
    except (TypeError, ValueError):
        request = TurnRequest(prompt=rec.prompt)
    return TurnRow(
        id=rec.id, prompt=rec.prompt, request=request, status=rec.status, parent_id=rec.parent_id,
        kind=rec.kind, starred=rec.starred, note=rec.note or "", video_paths=rec.video_paths,
        thumbnail_path=rec.thumbnail.path if rec.thumbnail else None, total_s=rec.total_s,
        error=rec.error or "",
        extra={"replay_match": rec.replay_match, "created_at": rec.created_at},
    )
