"""Replay on the real built-in tiny model (CPU): same request and seed -> the same video."""

from __future__ import annotations

import numpy as np

from _tiny import tiny_engine
from engine.api import default_request
from sessions import SessionStore, fork_request, replay_turn, run_turn
from sessions.media import iter_frames


def test_replay_matches_on_the_tiny_model(tmp_path):
    engine = tiny_engine()
    # The smallest clip the tiny model makes: one frame, one step (seconds on a CPU).
    request = default_request("tiny", "a paper boat on a pond").replace(
        num_frames=1, num_steps=1, aspect_ratio="1:1", seed=1234)
    with SessionStore(tmp_path).create("tiny") as s:
        first = run_turn(s, request, engine)
        original = s.get(first)
        assert original.status == "done" and original.videos and original.launch.get("model") == "tiny"

        again, matches = replay_turn(s, first, engine)
        assert matches is True
        replay = s.get(again)
        assert (replay.kind, replay.parent_id, replay.replay_match) == ("replay", first, True)
        assert replay.request == original.request
        a = np.stack(list(iter_frames(original.video_paths[0])))
        b = np.stack(list(iter_frames(replay.video_paths[0])))
        assert a.shape == b.shape and np.array_equal(a, b)

        # A fork with another seed is a different video, linked to the original.
        fork = run_turn(s, fork_request(original, seed=99), engine, parent_id=first, kind="fork")
        assert [c.id for c in s.children(first)] == [again, fork]
        c = np.stack(list(iter_frames(s.get(fork).video_paths[0])))
        assert not np.array_equal(a, c)
