"""The per-turn parameters as the REPL names, shows and completes them.

``/set`` accepts the :data:`engine.api.TurnRequest.FIELDS` names (minus ``prompt``) plus a
few short aliases; parsing and validation are :func:`engine.api.parse_field`'s, so the REPL,
the TUI and the config file reject exactly the same values with the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.api import (
    ASPECT_RATIOS,
    DEFAULT_SIGMA_MAX_I2V,
    DEFAULT_SIGMA_MAX_T2V,
    MAX_SEED,
    RESOLUTIONS,
    TurnRequest,
    parse_field,
)
from engine.errors import ValidationError


@dataclass(frozen=True)
class FieldSpec:
    name: str  # TurnRequest field
    rule: str  # what is allowed, for /help set
    suggestions: tuple[str, ...]  # values offered by completion


FIELD_SPECS: dict[str, FieldSpec] = {
    s.name: s
    for s in (
        FieldSpec("seed", f"whole number 0..{MAX_SEED}", ("0", "1", "42", "1234")),
        FieldSpec("num_steps", "rCM steps, 1..4", ("1", "2", "3", "4")),
        FieldSpec("sla_topk", "SLA key-block fraction in (0, 1]; 0.1-0.15 recommended", ("0.1", "0.15", "0.2", "1.0")),
        FieldSpec(
            "sigma_max",
            f"initial sigma > 0, or 'auto' ({DEFAULT_SIGMA_MAX_T2V:g} T2V, {DEFAULT_SIGMA_MAX_I2V:g} I2V)",
            ("auto", "80", "200", "1600"),
        ),
        FieldSpec("num_frames", "4k+1 frames (1, 5, ..., 81)", ("1", "5", "9", "17", "33", "49", "81")),
        FieldSpec("num_samples", "videos per turn, 1..16", ("1", "2", "4")),
        FieldSpec("resolution", "one of " + ", ".join(RESOLUTIONS), tuple(RESOLUTIONS)),
        FieldSpec("aspect_ratio", "one of " + ", ".join(ASPECT_RATIOS), ASPECT_RATIOS),
        FieldSpec("ode", "on/off: deterministic ODE update instead of SDE", ("on", "off")),
        FieldSpec("adaptive_resolution", "on/off: I2V keeps the image's aspect ratio", ("on", "off")),
        FieldSpec("boundary", "I2V expert switch time in (0, 1); 0.9 by default", ("0.9", "0.875", "0.5")),
        FieldSpec("image_path", "I2V input image (PNG/JPEG/WebP), or 'none' for T2V", ("none",)),
    )
}

# Short spellings accepted by /set (the reference's flag names use dashes or underscores).
ALIASES = {
    "image": "image_path",
    "aspect": "aspect_ratio",
    "steps": "num_steps",
    "frames": "num_frames",
    "samples": "num_samples",
    "topk": "sla_topk",
    "sigma": "sigma_max",
    "adaptive": "adaptive_resolution",
    "res": "resolution",
}

SETTABLE = tuple(FIELD_SPECS)
assert set(SETTABLE) == set(TurnRequest.FIELDS) - {"prompt"}, "FIELD_SPECS must cover every per-turn field"


def resolve_field(name: str) -> str:
    """A /set name (any case, dashes or underscores, or an alias) -> the TurnRequest field."""
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in FIELD_SPECS:
        raise ValidationError(
            "parameter", name, "one of " + ", ".join(SETTABLE) + " (aliases: " + ", ".join(ALIASES) + ")"
        )
    return key


def parse_setting(name: str, text: str) -> tuple[str, Any]:
    """``/set NAME TEXT`` -> (field, validated value).  Raises ValidationError."""
    field = resolve_field(name)
    if field == "sigma_max" and text.strip().lower() == "auto":
        text = "default"
    return field, parse_field(field, text)


def show_value(field: str, value: Any, request: TurnRequest | None = None) -> str:
    """A value as the REPL prints it (and as /set would accept it back)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        if field == "sigma_max":
            eff = request.effective_sigma_max if request is not None else DEFAULT_SIGMA_MAX_T2V
            return f"auto ({eff:g})"
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
