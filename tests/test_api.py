"""engine.api: the torch-free launch settings."""

import pytest

from engine.api import LaunchConfig
from engine.errors import ValidationError


def test_auto_attention_resolves_per_model():
    assert LaunchConfig().attention == "auto"
    assert LaunchConfig(model="tiny").resolved_attention() == "original"
    assert LaunchConfig(model="Wan2.1-1.3B").resolved_attention() == "sla"
    assert LaunchConfig(model="Wan2.1-1.3B", attention="sagesla").resolved_attention() == "sagesla"
    with pytest.raises(ValidationError):
        LaunchConfig(attention="fast").validate()


def test_the_tiny_example_prompt_speaks_the_synthetic_worlds_vocabulary():
    from engine.api import example_prompt
    from engine.train.world import BACKGROUND_COLOURS, MOTION_WORDS, OBJECT_COLOURS

    words = example_prompt("tiny")
    assert any(f"{c} " in words for c in OBJECT_COLOURS) and any(f"{b} background" in words for b in BACKGROUND_COLOURS)
    assert any(m in words for ms in MOTION_WORDS.values() for m in ms)
