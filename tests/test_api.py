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
