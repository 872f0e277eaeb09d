"""The one small interface between the UIs and the engine.

A :class:`TurnRequest` goes in, :class:`ProgressEvent` objects come out while the
turn runs, and a :class:`TurnResult` comes back.  Launch-time choices (model,
checkpoints, attention backend, quantization, device, offloading) live in
:class:`LaunchConfig` and are fixed while an engine is open; everything in a
``TurnRequest`` may change from one turn to the next without reloading.

This module must stay importable without torch: the Textual app and the REPL
import it, and only :func:`open_engine` pulls the heavy engine in, lazily.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from engine.errors import ValidationError

# ---------------------------------------------------------------------------
# Vocabularies

MODELS = ("tiny", "tiny-i2v", "Wan2.1-1.3B", "Wan2.1-14B", "Wan2.2-A14B")
I2V_MODELS = ("tiny-i2v", "Wan2.2-A14B")
ATTENTION_BACKENDS = ("original", "sla", "sagesla", "spargeattn")
# "auto": the model's own default (engine.configs.ModelPreset.default_attention).
ATTENTION_CHOICES = ("auto", *ATTENTION_BACKENDS)
STAGES = ("load", "encode", "denoise", "decode", "write")

# (width, height) per resolution key and aspect ratio.  The first five rows are the
# reference's VIDEO_RES_SIZE_INFO (TurboDiffusion rcm/datasets/utils.py, see
# shared/reference/FORMATS.md section 7).  "192p" is ours: the size the built-in
# tiny model runs at on a CPU in seconds (all sides multiples of 16).
RESOLUTIONS: dict[str, dict[str, tuple[int, int]]] = {
    "480p": {"1:1": (640, 640), "4:3": (640, 480), "3:4": (480, 640), "16:9": (832, 480), "9:16": (480, 832)},
    "720p": {"1:1": (960, 960), "4:3": (960, 720), "3:4": (720, 960), "16:9": (1280, 720), "9:16": (720, 1280)},
    "480": {"1:1": (480, 480), "4:3": (640, 480), "3:4": (480, 640), "16:9": (768, 432), "9:16": (432, 768)},
    "512": {"1:1": (512, 512), "4:3": (640, 512), "3:4": (512, 640), "16:9": (640, 384), "9:16": (384, 640)},
    "720": {"1:1": (960, 960), "4:3": (960, 704), "3:4": (704, 960), "16:9": (1280, 704), "9:16": (704, 1280)},
    "192p": {"1:1": (192, 192), "4:3": (256, 192), "3:4": (192, 256), "16:9": (336, 192), "9:16": (192, 336)},
}
ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4")

# Reference defaults (FORMATS.md section 8): sigma_max 80 for T2V, 200 for I2V.
DEFAULT_SIGMA_MAX_T2V = 80.0
DEFAULT_SIGMA_MAX_I2V = 200.0
MAX_SEED = 2**63 - 1


def frame_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """(width, height) for a resolution key and aspect ratio (validated)."""
    if resolution not in RESOLUTIONS:
        raise ValidationError("resolution", resolution, "one of " + ", ".join(RESOLUTIONS))
    if aspect_ratio not in RESOLUTIONS[resolution]:
        raise ValidationError("aspect_ratio", aspect_ratio, "one of " + ", ".join(ASPECT_RATIOS))
    return RESOLUTIONS[resolution][aspect_ratio]


def adaptive_size(resolution: str, aspect_ratio: str, image_w: int, image_h: int) -> tuple[int, int]:
    """Keep the image's aspect ratio within the table entry's pixel budget.

    FORMATS.md section 7: h = 16*round(sqrt(area*a)/16), w = 16*round(sqrt(area/a)/16),
    with a = image_h/image_w and Python's round (half to even).
    """
    w0, h0 = frame_size(resolution, aspect_ratio)
    area = w0 * h0
    a = image_h / image_w
    h = 16 * round(math.sqrt(area * a) / 16)
    w = 16 * round(math.sqrt(area / a) / 16)
    return max(16, w), max(16, h)


# ---------------------------------------------------------------------------
# Launch-time configuration


@dataclass(frozen=True)
class LaunchConfig:
    """Choices fixed for the lifetime of an open engine."""

    model: str = "tiny"
    dit_path: str | None = None  # Wan2.1 T2V DiT
    high_noise_model_path: str | None = None  # Wan2.2 I2V high-noise expert
    low_noise_model_path: str | None = None  # Wan2.2 I2V low-noise expert
    vae_path: str | None = None
    text_encoder_path: str | None = None
    tokenizer_path: str | None = None  # folder of google/umt5-xxl, or None for the HF cache
    attention: str = "auto"  # auto | original | sla | sagesla | spargeattn (needs the SpargeAttn package)
    quant_linear: bool = False  # W8A8 int8 linears (quantized at load if the file is not)
    default_norm: bool = False  # plain torch norms instead of the fused kernels
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (bf16 on CUDA, float32 on CPU) | bfloat16 | float32
    offload_text_encoder: bool = False  # move umT5 to the CPU after each encode
    offload_inactive_expert: bool = False  # keep the unused I2V expert on the CPU (saves memory, costs transfers)
    compile: bool = False  # CUDA: DiT forward as a CUDA graph (engine.pipeline.COMPILE_DIT_*; no gain on an H200)
    random_weights: bool = False  # build every model with random weights of the real shapes (benchmarks)

    def validate(self) -> None:
        if self.model not in MODELS:
            raise ValidationError("model", self.model, "one of " + ", ".join(MODELS))
        if self.attention not in ATTENTION_CHOICES:
            raise ValidationError("attention", self.attention, "one of " + ", ".join(ATTENTION_CHOICES))
        if self.dtype not in ("auto", "bfloat16", "float32", "float16"):
            raise ValidationError("dtype", self.dtype, "auto, bfloat16, float16 or float32")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValidationError("device", self.device, "auto, cpu, cuda or cuda:N")

    def resolved_attention(self) -> str:
        """The backend ``attention`` names, with ``auto`` resolved for this model."""
        if self.attention != "auto":
            return self.attention
        from engine.configs import get_preset  # plain data, no torch

        return get_preset(self.model).default_attention

    @property
    def is_i2v(self) -> bool:
        return self.model in I2V_MODELS

    def replace(self, **changes: Any) -> "LaunchConfig":
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------------
# Per-turn request


@dataclass(frozen=True)
class TurnRequest:
    """Everything one turn needs; any field may change between turns."""

    prompt: str
    image_path: str | None = None  # I2V conditioning image; None for T2V
    seed: int = 0
    num_steps: int = 4  # rCM steps, 1..4
    sla_topk: float = 0.1  # fraction of key blocks kept by SLA, (0, 1]
    sigma_max: float | None = None  # None: 80 for T2V, 200 for I2V
    num_frames: int = 81  # 4k+1
    num_samples: int = 1
    resolution: str = "480p"
    aspect_ratio: str = "16:9"
    adaptive_resolution: bool = False  # I2V: keep the image's aspect ratio
    ode: bool = False  # deterministic ODE update instead of the SDE one
    boundary: float = 0.9  # I2V: switch to the low-noise expert below this RF time

    # Field names a UI may set, in the order they are shown.
    FIELDS = (
        "prompt", "image_path", "seed", "num_steps", "sla_topk", "sigma_max", "num_frames",
        "num_samples", "resolution", "aspect_ratio", "adaptive_resolution", "ode", "boundary",
    )

    @property
    def effective_sigma_max(self) -> float:
        if self.sigma_max is not None:
            return float(self.sigma_max)
        return DEFAULT_SIGMA_MAX_I2V if self.image_path else DEFAULT_SIGMA_MAX_T2V

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) before adaptive resolution."""
        return frame_size(self.resolution, self.aspect_ratio)

    def replace(self, **changes: Any) -> "TurnRequest":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TurnRequest":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def validate(self, *, check_files: bool = True) -> "TurnRequest":
        """Raise :class:`ValidationError` for the first bad field; return self when all are fine."""
        validate_field("prompt", self.prompt)
        for name in self.FIELDS[1:]:
            validate_field(name, getattr(self, name), check_files=check_files)
        frame_size(self.resolution, self.aspect_ratio)
        return self


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_field(name: str, value: object, *, check_files: bool = True) -> None:
    """Validate one per-turn field; raise :class:`ValidationError` naming field, value and rule."""
    if name == "prompt":
        if not isinstance(value, str) or not value.strip():
            raise ValidationError("prompt", value, "a non-empty text")
    elif name == "image_path":
        if value is None or value == "":
            return
        if not isinstance(value, str):
            raise ValidationError("image_path", value, "a path to an image file")
        if check_files:
            _check_image(value)
    elif name == "seed":
        if not _is_int(value) or not 0 <= value <= MAX_SEED:
            raise ValidationError("seed", value, f"a whole number from 0 to {MAX_SEED}")
    elif name == "num_steps":
        if not _is_int(value) or not 1 <= value <= 4:
            raise ValidationError("num_steps", value, "a whole number from 1 to 4 (rCM schedule)")
    elif name == "sla_topk":
        if not _is_num(value) or not 0 < value <= 1:
            raise ValidationError("sla_topk", value, "a fraction in (0, 1]; 0.1 to 0.15 is recommended")
    elif name == "sigma_max":
        if value is None:
            return
        if not _is_num(value) or value <= 0:
            raise ValidationError("sigma_max", value, "a number > 0 (80 for T2V, 200 for I2V by default)")
    elif name == "num_frames":
        if not _is_int(value) or value < 1 or (value - 1) % 4 != 0:
            raise ValidationError("num_frames", value, "a whole number of the form 4k+1 (1, 5, ..., 81)")
    elif name == "num_samples":
        if not _is_int(value) or not 1 <= value <= 16:
            raise ValidationError("num_samples", value, "a whole number from 1 to 16")
    elif name == "resolution":
        if value not in RESOLUTIONS:
            raise ValidationError("resolution", value, "one of " + ", ".join(RESOLUTIONS))
    elif name == "aspect_ratio":
        if value not in ASPECT_RATIOS:
            raise ValidationError("aspect_ratio", value, "one of " + ", ".join(ASPECT_RATIOS))
    elif name in ("adaptive_resolution", "ode"):
        if not isinstance(value, bool):
            raise ValidationError(name, value, "true or false")
    elif name == "boundary":
        if not _is_num(value) or not 0 < value < 1:
            raise ValidationError("boundary", value, "a number in (0, 1); 0.9 by default")
    else:
        raise ValidationError(name, value, "a known parameter: " + ", ".join(TurnRequest.FIELDS))


def _check_image(path: str) -> None:
    if not os.path.isfile(path):
        raise ValidationError("image_path", path, "an existing image file (file not found)")
    try:
        from PIL import Image

        with Image.open(path) as im:
            im.verify()
    except Exception as e:  # PIL raises many kinds; all mean "not an image we can read"
        raise ValidationError("image_path", path, f"a readable PNG/JPEG/WebP image ({type(e).__name__})") from None


def parse_field(name: str, text: str) -> Any:
    """Turn a user's text (REPL ``/set``, a TUI input) into a typed field value, then validate it."""
    text = text.strip()
    try:
        if name in ("seed", "num_steps", "num_frames", "num_samples"):
            value: Any = int(text)
        elif name in ("sla_topk", "boundary"):
            value = float(text)
        elif name == "sigma_max":
            value = None if text.lower() in ("", "none", "default") else float(text)
        elif name in ("adaptive_resolution", "ode"):
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                value = True
            elif low in ("0", "false", "no", "off"):
                value = False
            else:
                raise ValueError
        elif name == "image_path":
            value = None if text.lower() in ("", "none") else os.path.expanduser(text)
        else:
            value = text
    except ValueError:
        kinds = {"seed": "a whole number", "num_steps": "a whole number", "num_frames": "a whole number",
                 "num_samples": "a whole number", "sla_topk": "a number", "boundary": "a number",
                 "sigma_max": "a number", "adaptive_resolution": "true or false", "ode": "true or false"}
        raise ValidationError(name, text, kinds.get(name, "a valid value")) from None
    validate_field(name, value)
    return value


def example_prompt(model: str = "tiny") -> str:
    """A prompt that shows what ``model`` can do (the tiny model knows only its synthetic world:
    engine/train/world.py, docs/tiny.md)."""
    if model == "tiny":
        return "a red circle moving left on a blue background"
    return "a red fox trotting through fresh snow at dawn, cinematic"


def default_request(model: str = "tiny", prompt: str = "") -> TurnRequest:
    """Per-turn defaults that suit a model (the tiny model runs small clips on a CPU)."""
    if model.startswith("tiny"):
        # 192x192x9: the size the built-in tiny model is trained at (engine/train)
        req = TurnRequest(prompt=prompt, resolution="192p", aspect_ratio="1:1", num_frames=9)
        # 3 steps for the trained tiny: it scores as well at 3 as at 4 within one clip (91.7% against
        # 91.9% on 144 held-out clips, 91.7 against 91.2 on 72; BENCHMARKS.md "Quality", session 8)
        # and is 14% faster on a CPU; the others keep rCM's 4
        return req.replace(num_steps=3) if model == "tiny" else req
    if model in I2V_MODELS:
        return TurnRequest(prompt=prompt, resolution="720p")
    return TurnRequest(prompt=prompt)


# ---------------------------------------------------------------------------
# What comes back


@dataclass(frozen=True)
class Preview:
    """A small RGB picture (uint8, row-major, 3 bytes a pixel) of the current clean-video estimate."""

    width: int
    height: int
    frames: tuple[bytes, ...]  # one entry per preview frame


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # one of STAGES
    status: str  # "start" | "step" | "end"
    step: int = 0  # 1-based sampling step for stage "denoise"
    total_steps: int = 0
    elapsed_s: float = 0.0  # since the turn started
    stage_s: float = 0.0  # duration of the stage, on "end"
    eta_s: float | None = None
    message: str = ""
    preview: Preview | None = None

    @property
    def fraction(self) -> float:
        """Rough overall progress in [0, 1] for a progress bar."""
        order = {"load": 0.0, "encode": 0.05, "denoise": 0.1, "decode": 0.85, "write": 0.95}
        base = order.get(self.stage, 0.0)
        if self.stage == "denoise" and self.total_steps:
            return base + 0.75 * self.step / self.total_steps
        if self.status == "end":
            nxt = {"load": 0.05, "encode": 0.1, "denoise": 0.85, "decode": 0.95, "write": 1.0}
            return nxt.get(self.stage, base)
        return base


@dataclass(frozen=True)
class TurnResult:
    request: TurnRequest  # exactly what ran (sigma_max filled in)
    video_paths: tuple[str, ...]  # one mp4 per sample
    thumbnail_path: str | None
    timings: Mapping[str, float]  # stage -> seconds; "denoise.step1".. for each step
    total_s: float
    peak_memory_bytes: int  # device peak (CUDA) or process peak RSS (CPU)
    width: int
    height: int
    num_frames: int
    launch: Mapping[str, Any] = field(default_factory=dict)  # model, attention, quant, checkpoints
    device: str = "cpu"


@dataclass(frozen=True)
class EngineInfo:
    model: str
    device: str
    dtype: str
    attention: str
    quant_linear: bool
    i2v: bool
    checkpoints: Mapping[str, Any] = field(default_factory=dict)  # role -> {"path", "size"}


ProgressCallback = Callable[[ProgressEvent], None]


class Engine(Protocol):
    """A resident engine: models loaded once, any number of turns."""

    def info(self) -> EngineInfo: ...

    def memory_in_use(self) -> int:
        """Bytes the engine holds on its device now (0 where it cannot tell)."""
        ...

    def generate(
        self, request: TurnRequest, output_dir: str, on_progress: ProgressCallback | None = None
    ) -> TurnResult:
        """Run one turn; write videos under ``output_dir``.  Raises TurboError subclasses."""
        ...

    def cancel(self) -> None:
        """Ask the running turn to stop before its next step (thread-safe)."""
        ...

    def close(self) -> None: ...


def open_engine(launch: LaunchConfig, on_progress: ProgressCallback | None = None) -> Engine:
    """Load the models of ``launch`` and return a resident engine (imports torch)."""
    launch.validate()
    from engine.pipeline import ResidentPipeline  # heavy: torch, models

    return ResidentPipeline(launch, on_progress=on_progress)
