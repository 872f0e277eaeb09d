"""Sessions: the durable history of turns, with replay, fork, export and import.

Torch-free (the UI imports it).  Requests and results are stored as plain data::

    store = SessionStore(settings.sessions_root)
    with store.open_or_create("default") as session:
        turn_id = session.begin_turn(request.to_dict(), launch_summary(settings.launch))
        try:
            result = engine.generate(request, str(session.output_dir_for(turn_id)), on_progress)
        except Cancelled as e:
            session.fail_turn(turn_id, str(e), status="cancelled")
        except TurboError as e:
            session.fail_turn(turn_id, str(e))
        else:
            session.finish_turn(turn_id, result)
"""

from sessions.export import export_session
from sessions.importing import ImportLimits, import_session
from sessions.media import make_reel, videos_match
from sessions.replay import fork_request, replay_turn, run_turn
from sessions.schema import KINDS, SCHEMA_VERSION, STATUSES
from sessions.store import (
    Session,
    SessionInfo,
    SessionInUse,
    SessionStore,
    StoredFile,
    TurnRecord,
    launch_summary,
)

__all__ = [
    "KINDS", "SCHEMA_VERSION", "STATUSES", "ImportLimits", "Session", "SessionInUse", "SessionInfo",
    "SessionStore", "StoredFile", "TurnRecord", "export_session", "fork_request", "import_session",
    "launch_summary", "make_reel", "replay_turn", "run_turn", "videos_match",
]
