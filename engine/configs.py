"""Model configurations: frozen dataclasses plus named presets (no torch here).

Numbers for the Wan presets come from the reference's ``modify_model.py::select_model`` and
``umt5.py`` / ``wan2pt1.py`` (shared/reference/FORMATS.md sections 2, 5 and 6).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DiTConfig:
    dim: int
    ffn_dim: int
    num_heads: int
    num_layers: int
    in_dim: int = 16  # 16 for T2V, 36 for I2V (16 noise + 4 mask + 16 image latent)
    out_dim: int = 16
    text_dim: int = 4096
    freq_dim: int = 256
    text_len: int = 512
    patch_size: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def is_i2v(self) -> bool:
        return self.in_dim != self.out_dim


@dataclass(frozen=True)
class VAEConfig:
    dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple[bool, ...] = (False, True, True)


@dataclass(frozen=True)
class T5Config:
    vocab_size: int = 256_384
    dim: int = 4096
    dim_attn: int = 4096
    dim_ffn: int = 10_240
    num_heads: int = 64
    num_layers: int = 24
    num_buckets: int = 32
    max_distance: int = 128
    text_len: int = 512
    eps: float = 1e-6


@dataclass(frozen=True)
class ModelPreset:
    name: str
    dit: DiTConfig
    vae: VAEConfig
    text: T5Config
    tokenizer: str  # "umt5" (google/umt5-xxl, needs its files) or "bytes" (built in)
    i2v: bool = False
    # What LaunchConfig(attention="auto") runs.  The tiny models: dense (on a CPU the reference
    # SLA costs more than dense attention at their 1,728 tokens, and the shipped dense student
    # scores higher than the SLA fine-tune, BENCHMARKS.md "Quality").
    default_attention: str = "sla"


_WAN_VAE = VAEConfig()
_UMT5_XXL = T5Config()

PRESETS: dict[str, ModelPreset] = {
    "Wan2.1-1.3B": ModelPreset(
        "Wan2.1-1.3B", DiTConfig(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30), _WAN_VAE, _UMT5_XXL, "umt5"
    ),
    "Wan2.1-14B": ModelPreset(
        "Wan2.1-14B", DiTConfig(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40), _WAN_VAE, _UMT5_XXL, "umt5"
    ),
    "Wan2.2-A14B": ModelPreset(
        "Wan2.2-A14B",
        DiTConfig(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40, in_dim=36),
        _WAN_VAE, _UMT5_XXL, "umt5", i2v=True,
    ),
    # Built in, runs a whole turn on 2 CPU cores in seconds.  Same classes as the real
    # models; byte-level tokenizer (vocab = 256 bytes + pad/eos/unk), so no download.
    "tiny": ModelPreset(
        "tiny",
        # Patch (1, 1, 1): a 192x192x9 clip is 3x24x24 = 1,728 tokens (27 SLA key blocks), so
        # top-k 0.05/0.1/0.15/0.3 keep 1/2/4/8 blocks; with Wan's (1, 2, 2) it would be 432.
        # dim 192, 3 heads, 6 layers (3.5 M parameters): trained here, BENCHMARKS.md "Quality" (a dim-128,
        # 4-layer DiT could not learn motion directions beyond ~60%).
        DiTConfig(dim=192, ffn_dim=576, num_heads=3, num_layers=6, text_dim=64, patch_size=(1, 1, 1)),
        VAEConfig(dim=4),
        T5Config(vocab_size=260, dim=64, dim_attn=64, dim_ffn=128, num_heads=4, num_layers=2),
        "bytes", default_attention="original",
    ),
}
# The tiny I2V pair (high- and low-noise experts share this config), like Wan2.2-A14B.
PRESETS["tiny-i2v"] = ModelPreset(
    "tiny-i2v",
    DiTConfig(dim=128, ffn_dim=256, num_heads=2, num_layers=4, text_dim=64, in_dim=36, patch_size=(1, 1, 1)),
    PRESETS["tiny"].vae, PRESETS["tiny"].text, "bytes", i2v=True, default_attention="original",
)


def get_preset(name: str) -> ModelPreset:
    try:
        return PRESETS[name]
    except KeyError:
        from engine.errors import ConfigError

        raise ConfigError(f"unknown model '{name}' (known: {', '.join(PRESETS)})") from None
