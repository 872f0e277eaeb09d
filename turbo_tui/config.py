"""Configuration: one TOML file read once at start-up into frozen dataclasses.

Precedence, lowest first: built-in defaults < the TOML file < command-line flags.
The file lives in the user config directory (``turbo-tui config-path`` prints it)
unless ``--config`` names another.  Example::

    [engine]
    model = "Wan2.1-1.3B"        # tiny | Wan2.1-1.3B | Wan2.1-14B | Wan2.2-A14B
    attention = "auto"           # auto (tiny: original, Wan: sla) | original | sla | sagesla | spargeattn
    quant_linear = false
    device = "auto"

    [checkpoints]
    dit = "~/checkpoints/TurboWan2.1-T2V-1.3B-480P.pth"
    vae = "~/checkpoints/Wan2.1_VAE.pth"
    text_encoder = "~/checkpoints/models_t5_umt5-xxl-enc-bf16.pth"

    [turn]
    num_steps = 4
    sla_topk = 0.1

    [ui]
    theme = "turbo-dark"

    [sessions]
    dir = "~/videos/turbo-sessions"

Unknown sections or keys and values of the wrong type are errors that name the
key and the file.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from engine.api import LaunchConfig, TurnRequest, default_request, validate_field
from engine.errors import ConfigError, ValidationError

APP_NAME = "turbo-tui"


def user_config_dir() -> Path:
    from platformdirs import user_config_dir as _ucd

    return Path(_ucd(APP_NAME, appauthor=False))


def user_data_dir() -> Path:
    from platformdirs import user_data_dir as _udd

    return Path(_udd(APP_NAME, appauthor=False))


def default_config_path() -> Path:
    return user_config_dir() / "config.toml"


# [checkpoints] key -> LaunchConfig field
CHECKPOINT_KEYS = {
    "dit": "dit_path",
    "high_noise": "high_noise_model_path",
    "low_noise": "low_noise_model_path",
    "vae": "vae_path",
    "text_encoder": "text_encoder_path",
    "tokenizer": "tokenizer_path",
}
ENGINE_KEYS = {
    f.name: f.type for f in dataclasses.fields(LaunchConfig) if f.name not in CHECKPOINT_KEYS.values()
}
TURN_KEYS = tuple(n for n in TurnRequest.FIELDS if n != "prompt")


@dataclass(frozen=True)
class Settings:
    """Everything read at start-up; built once at the edge and passed down."""

    launch: LaunchConfig = field(default_factory=LaunchConfig)
    turn_overrides: Mapping[str, Any] = field(default_factory=dict)  # per-turn defaults from file/flags
    theme: str = "turbo-dark"
    session_dir: str | None = None  # None: <user data dir>/sessions
    config_path: str | None = None  # the file that was read, if any

    def default_turn(self, prompt: str = "") -> TurnRequest:
        """The per-turn defaults for the launch model, with the file's and flags' overrides."""
        return default_request(self.launch.model, prompt).replace(**dict(self.turn_overrides))

    @property
    def sessions_root(self) -> Path:
        if self.session_dir:
            return Path(os.path.expanduser(self.session_dir))
        return user_data_dir() / "sessions"

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


def _type_ok(value: Any, annotation: str) -> bool:
    ann = str(annotation)
    if "bool" in ann:
        return isinstance(value, bool)
    if "int" in ann:
        return isinstance(value, int) and not isinstance(value, bool)
    if "str" in ann:
        return isinstance(value, str)
    return True


def _type_name(annotation: str) -> str:
    ann = str(annotation)
    for t in ("bool", "int", "str"):
        if t in ann:
            return {"bool": "true/false", "int": "a whole number", "str": "a string"}[t]
    return "a value"


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Read the TOML file (``path``, or the default location if it exists)."""
    explicit = path is not None
    p = Path(os.path.expanduser(str(path))) if explicit else default_config_path()
    if not p.exists():
        if explicit:
            raise ConfigError(f"{p}: config file not found (create it, or drop --config)")
        return Settings()
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read config file: {e}") from None
    return settings_from_mapping(data, source=str(p))


def settings_from_mapping(data: Mapping[str, Any], source: str = "<config>") -> Settings:
    sections = {"engine", "checkpoints", "turn", "ui", "sessions"}
    for key in data:
        if key not in sections:
            raise ConfigError(f"{source}: unknown section or key '{key}' (known: {', '.join(sorted(sections))})")
        if not isinstance(data[key], dict):
            raise ConfigError(f"{source}: '{key}' must be a table ([{key}])")

    launch_kw: dict[str, Any] = {}
    for key, value in data.get("engine", {}).items():
        if key not in ENGINE_KEYS:
            raise ConfigError(f"{source}: unknown key 'engine.{key}' (known: {', '.join(ENGINE_KEYS)})")
        if not _type_ok(value, ENGINE_KEYS[key]):
            raise ConfigError(f"{source}: 'engine.{key}' = {value!r} has the wrong type; expected {_type_name(ENGINE_KEYS[key])}")
        launch_kw[key] = value
    for key, value in data.get("checkpoints", {}).items():
        if key not in CHECKPOINT_KEYS:
            raise ConfigError(f"{source}: unknown key 'checkpoints.{key}' (known: {', '.join(CHECKPOINT_KEYS)})")
        if not isinstance(value, str):
            raise ConfigError(f"{source}: 'checkpoints.{key}' = {value!r} has the wrong type; expected a path string")
        launch_kw[CHECKPOINT_KEYS[key]] = os.path.expanduser(value)
    launch = LaunchConfig(**launch_kw)
    try:
        launch.validate()
    except ValidationError as e:
        raise ConfigError(f"{source}: engine.{e.field} = {e.value!r} is not allowed: {e.allowed}") from None

    turn: dict[str, Any] = {}
    for key, value in data.get("turn", {}).items():
        if key not in TURN_KEYS:
            raise ConfigError(f"{source}: unknown key 'turn.{key}' (known: {', '.join(TURN_KEYS)})")
        if key in ("sla_topk", "sigma_max", "boundary") and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        try:
            validate_field(key, value)
        except ValidationError as e:
            raise ConfigError(f"{source}: turn.{key} = {value!r} is not allowed: {e.allowed}") from None
        turn[key] = value

    ui = data.get("ui", {})
    for key in ui:
        if key != "theme":
            raise ConfigError(f"{source}: unknown key 'ui.{key}' (known: theme)")
    theme = ui.get("theme", Settings.theme)
    if not isinstance(theme, str):
        raise ConfigError(f"{source}: 'ui.theme' = {theme!r} has the wrong type; expected a string")

    sess = data.get("sessions", {})
    for key in sess:
        if key != "dir":
            raise ConfigError(f"{source}: unknown key 'sessions.{key}' (known: dir)")
    sdir = sess.get("dir")
    if sdir is not None and not isinstance(sdir, str):
        raise ConfigError(f"{source}: 'sessions.dir' = {sdir!r} has the wrong type; expected a path string")

    return Settings(launch=launch, turn_overrides=turn, theme=theme, session_dir=sdir, config_path=source)
