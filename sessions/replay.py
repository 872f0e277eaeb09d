"""Replay a turn with exactly its stored request, and fork new requests from old turns."""

from __future__ import annotations

from typing import Any

from engine.api import Engine, ProgressCallback, TurnRequest
from engine.errors import Cancelled, SessionError, TurboError
from sessions.media import videos_match
from sessions.store import Session, TurnRecord, launch_summary


def fork_request(record: TurnRecord, **changes: Any) -> TurnRequest:
    """A new request from ``record``'s parameters with ``changes`` (validated, files not checked).

    The input image, unless changed, is the session's own copy, so a fork works even
    after the original file is gone.  Record the new turn with
    ``session.begin_turn(req, launch, parent_id=record.id, kind="fork")``.
    """
    req = record.turn_request().replace(**changes)
    return req.validate(check_files=False)


def run_turn(
    session: Session,
    request: TurnRequest,
    engine: Engine,
    *,
    parent_id: int | None = None,
    kind: str = "turn",
    on_progress: ProgressCallback | None = None,
) -> int:
    """Record and run one turn through ``engine``: running -> done | failed | cancelled.

    Returns the new turn's id; re-raises what the engine raised after recording it.
    """
    launch = _engine_launch(engine)
    turn_id = session.begin_turn(request.to_dict(), launch, parent_id=parent_id, kind=kind)
    try:
        result = engine.generate(request, str(session.output_dir_for(turn_id)), on_progress)
    except (Cancelled, KeyboardInterrupt) as e:
        session.fail_turn(turn_id, str(e) or "turn cancelled", status="cancelled")
        raise
    except TurboError as e:
        session.fail_turn(turn_id, str(e), status="failed")
        raise
    except Exception as e:  # an engine bug: keep the record honest, then let it surface
        session.fail_turn(turn_id, f"{type(e).__name__}: {e}", status="failed")
        raise
    session.finish_turn(turn_id, result)
    return turn_id


def replay_turn(
    session: Session,
    turn_id: int,
    engine: Engine,
    *,
    on_progress: ProgressCallback | None = None,
    tolerance: int = 0,
) -> tuple[int, bool]:
    """Re-run turn ``turn_id`` with exactly its stored request (same seed) as a new linked turn.

    Returns ``(new_turn_id, matches)``: whether the new videos decode to the same frames
    as the old ones (pixel difference at most ``tolerance``).  The answer is also stored
    on the new turn (``TurnRecord.replay_match``).
    """
    original = session.get(turn_id)
    if original.input_image is not None and not original.input_image.path:
        raise SessionError(f"turn {turn_id}: its input image is missing from the session")
    request = original.turn_request()
    new_id = run_turn(session, request, engine, parent_id=original.id, kind="replay", on_progress=on_progress)
    new = session.get(new_id)
    matches = original.status == "done" and videos_match(original.video_paths, new.video_paths, tolerance)
    session.set_replay_match(new_id, matches)
    return new_id, matches


def _engine_launch(engine: Engine) -> dict[str, Any]:
    return launch_summary({}, engine.info())
