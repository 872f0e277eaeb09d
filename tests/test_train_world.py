"""The synthetic world is deterministic and the analyzer recovers its ground truth."""

import numpy as np
import torch

from engine.train.analyze import analyze, score
from engine.train.world import (
    BACKGROUND_COLOURS, MOTIONS, OBJECT_COLOURS, combos, eval_specs, is_held_out, render, sample_spec,
)
from engine.video import to_uint8_frames


def test_same_seed_same_clip_and_pixels():
    a, b = sample_spec(123), sample_spec(123)
    assert a == b
    assert torch.equal(render([a]), render([b]))
    assert sample_spec(124) != a


def test_clip_shapes_and_range():
    spec = sample_spec(5, num_frames=13, height=64, width=96)
    v = render([spec], 64, 96)
    assert v.shape == (1, 3, 13, 64, 96)
    assert v.min() >= -1 and v.max() <= 1
    assert len(spec.cx) == 13


def test_held_out_split_is_disjoint_and_covers_every_value():
    train, held = combos(False), combos(True)
    assert not set(train) & set(held) and len(held) >= 12
    assert all(is_held_out(*c) for c in held)
    for i in range(50):  # training draws never hit a held-out combination
        s = sample_spec(i)
        assert not is_held_out(s.colour, s.background, s.motion)
    assert {c for c, _, _ in train} == set(OBJECT_COLOURS)
    assert {b for _, b, _ in train} == set(BACKGROUND_COLOURS)
    assert {m for _, _, m in train} == set(MOTIONS)


def test_analyzer_recovers_ground_truth():
    specs = [sample_spec(i) for i in range(36)] + eval_specs(24)
    frames = [to_uint8_frames(v.numpy()) for v in render(specs)]
    res = [analyze(f) for f in frames]
    for r, s in zip(res, specs):
        assert r.attributes == s.attributes, (s.caption, r.attributes)
    sc = score(res, [s.attributes for s in specs])
    assert sc["all"] == 1.0 and sc["consistency"] > 0.9


def test_analyzer_on_noise_does_not_invent_a_clip():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (9, 192, 192, 3), dtype=np.uint8)
    spec = eval_specs(1)[0]
    assert analyze(frames).attributes != spec.attributes


def test_motion_confusion_counts_where_each_clip_went():
    from engine.train.analyze import confusion, confusion_markdown

    specs = [sample_spec(i, attributes=("red", "blue", m)) for i, m in enumerate(("left", "left", "up"))]
    clips = [to_uint8_frames(v.numpy()) for v in render(specs)]
    clips[1] = clips[1][::-1]  # played backwards: a left-moving clip moves right
    table = confusion([analyze(f) for f in clips], [s.attributes for s in specs])
    assert table == {"left": {"left": 1, "right": 1}, "up": {"up": 1}}
    lines = confusion_markdown(table, MOTIONS)
    assert lines[0].startswith("| truth \\ analyzed | left | right | up |")
    assert lines[2] == "| left | 1 | 1 | 0 | 0 | 0 | 0 |" and lines[3] == "| up | 0 | 0 | 1 | 0 | 0 | 0 |"
