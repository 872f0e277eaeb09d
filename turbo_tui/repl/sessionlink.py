"""The REPL's view of the session store: the open session, its turns, and switching.

Every call into :mod:`sessions` is in this file, so the commands speak only of turn numbers
(the numbers ``/history`` shows), prompts, requests and statuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.api import EngineInfo, LaunchConfig, TurnRequest, TurnResult
from engine.errors import TurboError
from turbo_tui.params import summarize


class NoSuchTurn(TurboError):
    pass


@dataclass(frozen=True)
class TurnView:
    """One recorded turn as the REPL shows it."""

    number: int  # what the user types: /replay N
    id: Any  # the store's id (the parent of a replay or fork)
    prompt: str
    request: TurnRequest
    status: str  # running | done | failed | cancelled | interrupted
    starred: bool
    video_paths: tuple[str, ...]
    total_s: float | None
    kind: str = "turn"
    parent_number: int | None = None
    error: str | None = None

    @property
    def summary(self) -> str:
        return summarize(self.request)

    @property
    def origin(self) -> str:
        if self.kind in ("replay", "fork") and self.parent_number is not None:
            return f"{self.kind} of {self.parent_number}"
        return ""


@dataclass(frozen=True)
class Record:
    """A turn that has begun: where its files go and how to finish it."""

    id: Any
    number: int
    output_dir: str


class SessionLink:
    """The open :class:`sessions.store.Session` and the store it came from.

    Turn numbers are the store's turn ids (1, 2, ... in each session; the folder
    ``files/turns/0007`` holds turn 7), so they stay stable when turns are deleted.
    """

    def __init__(self, store: Any, session: Any):
        self.store = store
        self._session = session

    @classmethod
    def open(cls, root: Path, name: str) -> "SessionLink":
        from sessions.store import SessionStore

        store = SessionStore(root)
        return cls(store, store.open_or_create(name))

    # -- the session -------------------------------------------------------------

    @property
    def name(self) -> str:
        return str(self._session.name)

    @property
    def path(self) -> Path:
        return Path(self._session.path)

    def names(self) -> list[str]:
        return [info.name for info in self.store.list()]

    def switch(self, name: str) -> bool:
        """Open session ``name``, creating it if new; return whether it was created."""
        if name == self.name:
            return False
        created = not self.store.exists(name)
        session = self.store.open_or_create(name)  # may raise; the current one stays open then
        self._session.close()
        self._session = session
        return created

    def export(self, path: str, *, reel: bool = False) -> Path:
        """Export to a folder or a .zip (never replacing anything); return what was written."""
        from sessions.export import export_session

        return export_session(self._session, path, reel=reel)

    def close(self) -> None:
        self._session.close()

    # -- turns -------------------------------------------------------------------

    def turns(self) -> list[TurnView]:
        return [self._view(r) for r in self._session.turns()]

    def turn(self, number: int) -> TurnView:
        try:
            return self._view(self._session.get(number))
        except TurboError:
            n = len(self._session)
            raise NoSuchTurn(f"no turn {number} in session {self.name} "
                             f"({'see /history' if n else 'it has no turns yet'})") from None

    def toggle_star(self, number: int) -> bool:
        t = self.turn(number)
        self._session.star(t.id, not t.starred)
        return not t.starred

    def begin(self, request: TurnRequest, launch: LaunchConfig, info: EngineInfo | None = None, *,
              parent: Any = None, kind: str = "new") -> Record:
        from sessions.store import launch_summary

        kind = "turn" if kind == "new" else kind
        turn_id = self._session.begin_turn(request, launch_summary(launch, info), parent_id=parent, kind=kind)
        return Record(turn_id, turn_id, str(self._session.output_dir_for(turn_id)))

    def finish(self, record: Record, result: TurnResult) -> None:
        self._session.finish_turn(record.id, result)

    def check_replay(self, original: int, replay: int) -> bool:
        """Whether the replay decoded to the same frames as the original; stored on the replay."""
        from sessions.media import videos_match

        old, new = self._session.get(original), self._session.get(replay)
        same = old.status == "done" and videos_match(old.video_paths, new.video_paths)
        self._session.set_replay_match(replay, same)
        return same

    def fail(self, record: Record, message: str, *, cancelled: bool = False) -> None:
        self._session.fail_turn(record.id, message, status="cancelled" if cancelled else "failed")

    @staticmethod
    def _view(rec: Any) -> TurnView:
        return TurnView(
            number=rec.id, id=rec.id, prompt=rec.prompt, request=rec.turn_request(), status=rec.status,
            starred=rec.starred, video_paths=rec.video_paths, total_s=rec.total_s, kind=rec.kind,
            parent_number=rec.parent_id, error=rec.error,
        )
