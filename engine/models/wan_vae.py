"""Wan2.1 causal 3-D video VAE (the ``WanVAE_`` of the reference), in plain PyTorch.

Layout and math follow shared/reference/FORMATS.md section 6 (reference:
thu-ml/TurboDiffusion ``rcm/tokenizers/wan2pt1.py``, itself Wan2.1's ``wan/modules/vae.py``).
Module names equal the checkpoint keys of ``Wan2.1_VAE.pth`` (``encoder.*``, ``conv1.*``,
``conv2.*``, ``decoder.*``), so a published file loads with ``load_state_dict(strict=True)``.

Time is causal everywhere: a 3-D conv pads only on the past.  The video is processed in
chunks (encode: frame 0, then 4 frames at a time; decode: one latent frame at a time), and
every conv that looks back in time reads the last frames of its input from the previous
chunk out of a :class:`CausalCache`.  The cache lives for one ``encode``/``decode`` call
only, so the module itself holds no state between calls.

The module holds no buffers: the latent mean/std are Python constants made into tensors
on the input's device and dtype when used, so a model built on the meta device and loaded
with ``assign=True`` is complete.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.configs import VAEConfig
from kernels.norms import channel_rms_silu, triton_usable
from kernels.vae import channel_bias_add

# Per-channel statistics of the Wan2.1 latent space (FORMATS.md section 6; the reference's
# ``rcm/tokenizers/wan2pt1.py::Wan2pt1VAEInterface``, same numbers as Wan2.1 ``wan/vae.py``).
LATENT_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)
LATENT_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)

# Temporal compression of the encoder: 1 + 4k frames -> 1 + k latent frames.
TIME_STRIDE = 4
SPACE_STRIDE = 8


# ----------------------------------------------------------------------------------------
# Causal caching
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FastDecode:
    """Inference-only decode options (``WanVAE.fast_decode``; used only with autograd off).

    Every option gives the plain path's values (``layout``, ``native_upsample``, ``static_cache``:
    the same operations on the same numbers; ``copy_upsample``: the same values moved) or differs by
    float rounding only (``frames_per_chunk``: the convolutions see longer inputs; ``compile``:
    Inductor's own kernels).
    """

    layout: bool = True  # keep channels-last 3-D through the time-upsample interleave (one copy, no relayout)
    native_upsample: bool = True  # nearest upsampling in the model dtype (a copy: float32 adds nothing)
    # channels-last: nearest x2 (and the time interleave before it) as one copy of 8-byte words;
    # aten's NHWC upsample kernel does 64-bit index arithmetic for every 2-byte element
    copy_upsample: bool = True
    static_cache: bool = False  # per-layer stream buffers reused chunk to chunk: no cat, clone, pad or alloc
    frames_per_chunk: int = 1  # latent frames per decoder call after frame 0 (bigger convs, more memory)
    compile: str | None = None  # torch.compile mode for the per-chunk decoder ("default", "max-autotune-no-cudagraphs")

    def __post_init__(self):
        if self.frames_per_chunk < 1:
            raise ValueError(f"frames_per_chunk must be >= 1, got {self.frames_per_chunk}")


class CausalCache:
    """The past of every time-looking layer during one chunked encode or decode.

    Maps a module to the last frames of the input stream it has seen (``[B, C, T<=2, H, W]``)
    or to a marker state; created fresh for each call and thrown away afterwards.  With
    ``fast`` (a :class:`FastDecode`), its options reach the layers through the cache.
    """

    def __init__(self, fast: FastDecode | None = None) -> None:
        self._past: dict[int, torch.Tensor] = {}
        self.fast = fast
        # static_cache: per layer (key, [B, C, P + T, H, W] buffer); the past is a view of its tail
        # (of its front once moved there for the next chunk).
        self._bufs: dict[int, tuple[tuple, torch.Tensor]] = {}
        # slots handed out by slot() and not yet consumed by stream()
        self._slots: dict[int, torch.Tensor] = {}

    def get(self, layer: nn.Module) -> torch.Tensor | None:
        return self._past.get(id(layer))

    def put(self, layer: nn.Module, frames: torch.Tensor) -> None:
        # clone: a slice would keep the whole chunk's activation alive.
        self._past[id(layer)] = frames.clone()

    def stream(self, layer: nn.Module, x: torch.Tensor, t_pad: int) -> tuple[torch.Tensor, int]:
        """(past frames + x along time, zero frames still to pad in front); remembers the new past.

        Static cache: the past is always ``t_pad`` frames (zeros before the first chunk, as the pad
        would be), so nothing is left to pad and the buffer keeps its shape from the first chunk on."""
        past = self.get(layer)
        if self.fast is None or not self.fast.static_cache:
            if past is None or past.shape[2] == 0:
                self.put(layer, x[:, :, -t_pad:])
                return x, t_pad
            stream = torch.cat([past, x], dim=2)
            self.put(layer, stream[:, :, -t_pad:])
            return stream, t_pad - past.shape[2]
        if self._slots.pop(id(layer), None) is x:  # written in place by the producer: no copies
            buf = self._bufs[id(layer)][1]
        else:
            buf = self._front(layer, x, t_pad)
            buf[:, :, t_pad:].copy_(x)
        self._past[id(layer)] = buf[:, :, -t_pad:]
        return buf, 0

    def slot(self, layer: nn.Module, like: torch.Tensor, t_pad: int | None = None) -> torch.Tensor | None:
        """Static cache: the place where ``layer``'s next input (shaped like ``like``) can be written
        so that :meth:`stream` copies nothing -- the tail of the layer's [past | chunk] buffer, with
        the past (zeros before the first chunk) already in front.  ``t_pad``: the layer's past length
        (default its ``time_pad``).  None without a static cache."""
        t_pad = getattr(layer, "time_pad", 0) if t_pad is None else t_pad
        if self.fast is None or not self.fast.static_cache or t_pad == 0:
            return None
        view = self._front(layer, like, t_pad)[:, :, t_pad:]
        self._slots[id(layer)] = view
        return view

    def _front(self, layer: nn.Module, x: torch.Tensor, t_pad: int) -> torch.Tensor:
        """The layer's [B, C, t_pad + T, H, W] buffer for a chunk like x, its past in the first
        ``t_pad`` frames.  The past is a view of the previous call's tail (no clone): it moves to
        the front T frames at a time, so no copy reads what it writes (T < t_pad overlaps)."""
        past = self.get(layer)
        key = (t_pad, tuple(x.shape), x.dtype, x.device)
        old = self._bufs.get(id(layer))
        if old is not None and old[0] == key:
            buf = old[1]
            if past.data_ptr() != buf.data_ptr():  # not moved yet (slot() then stream() come here once)
                step = x.shape[2]
                for i in range(0, t_pad, step):
                    n = min(step, t_pad - i)
                    buf[:, :, i:i + n].copy_(buf[:, :, i + step:i + step + n])
                self._past[id(layer)] = buf[:, :, :t_pad]
            return buf
        shape = (*x.shape[:2], t_pad + x.shape[2], *x.shape[3:])
        fmt = torch.channels_last_3d if _is_channels_last(x) else torch.contiguous_format
        buf = torch.empty(shape, device=x.device, dtype=x.dtype, memory_format=fmt)
        self._bufs[id(layer)] = (key, buf)
        p = 0 if past is None else past.shape[2]
        if p < t_pad:
            buf[:, :, :t_pad - p].zero_()  # before the first chunk: the zeros the pad would add
        if p:
            buf[:, :, t_pad - p:t_pad].copy_(past)
        self._past[id(layer)] = buf[:, :, :t_pad]
        return buf


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 5 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last_3d)


def _words(x: torch.Tensor) -> torch.Tensor | None:
    """[B, C, T, H, W] channels-last 3-D as int64 words [B, T, H, W, C * itemsize / 8] (the same
    memory), or None where its channels do not fill whole aligned words (or it is not channels-last)."""
    if not _is_channels_last(x):
        return None
    try:
        return x.permute(0, 2, 3, 4, 1).view(torch.int64)
    except RuntimeError:
        return None


def _upsample_copy(x: torch.Tensor, pairs: bool) -> torch.Tensor | None:
    """Nearest x2 in H and W of a channels-last [B, C, T, H, W] (``pairs``: of [B, 2C, T, H, W] whose
    channel halves are frames 2t and 2t+1, the time upsampling) -> channels-last [B, C, T', 2H, 2W],
    T' = 2T with ``pairs``.  One copy of 8-byte words: the values of F.interpolate(mode="nearest-exact")
    (an output pixel i reads i // 2) and of the interleave.  None where the words do not fit."""
    src = _words(x)
    k = 2 if pairs else 1
    if src is None or src.shape[-1] % k:
        return None
    b, c, t, h, w = x.shape
    out = torch.empty((b, c // k, k * t, 2 * h, 2 * w), device=x.device, dtype=x.dtype,
                      memory_format=torch.channels_last_3d)
    dst = _words(out)
    if dst is None or dst.shape[-1] * k != src.shape[-1]:
        return None
    n = dst.shape[-1]
    src = src.unflatten(-1, (k, n)).permute(0, 1, 4, 2, 3, 5)  # [B, T, k, H, W, n]
    dst.view(b, t, k, h, 2, w, 2, n).copy_(src[:, :, :, :, None, :, None, :])  # broadcast: each pixel 2 x 2
    return out


class CausalConv3d(nn.Conv3d):
    """Conv3d padded symmetrically in space and only on the past in time.

    With a cache, the past frames come from the previous chunk (zeros before the start),
    so running chunk by chunk equals running the whole stream at once.
    """

    def __init__(self, in_dim: int, out_dim: int, kernel, stride=1, padding=0):
        super().__init__(in_dim, out_dim, kernel, stride=stride, padding=0)
        pt, ph, pw = (padding,) * 3 if isinstance(padding, int) else padding
        self.time_pad = 2 * pt
        # F.pad order: (w_left, w_right, h_top, h_bottom, t_past, t_future)
        self.space_pad = (pw, pw, ph, ph)

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None, bias: bool = True) -> torch.Tensor:
        """``bias=False``: leave out the bias (the caller adds it in a fused pass of its own)."""
        t_pad = self.time_pad
        if cache is not None and t_pad > 0:
            x, t_pad = cache.stream(self, x, t_pad)
        b = self.bias if bias else None
        if x.is_cuda:
            # Spatial zero padding inside the convolution (one copy of the chunk fewer).
            if t_pad:
                x = F.pad(x, (0, 0, 0, 0, t_pad, 0))
            pw, _, ph, _ = self.space_pad
            return F.conv3d(x, self.weight, b, self.stride, (0, ph, pw))
        x = F.pad(x, (*self.space_pad, t_pad, 0))
        return F.conv3d(x, self.weight, b, self.stride)


# ----------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """L2-normalise over channels, times sqrt(C) and a per-channel gain (no bias)."""

    def __init__(self, dim: int, images: bool = False):
        super().__init__()
        # gamma is [C, 1, 1, 1] for video tensors and [C, 1, 1] for per-frame images.
        self.gamma = nn.Parameter(torch.ones(dim, *((1, 1) if images else (1, 1, 1))))
        self.scale = dim**0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) * self.scale * self.gamma


class ResidualBlock(nn.Module):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        # indices match the checkpoint: residual.{0,3}.gamma, residual.{2,6}.{weight,bias}
        self.residual = nn.Sequential(
            RMSNorm(in_dim), nn.SiLU(), CausalConv3d(in_dim, out_dim, 3, padding=1),
            RMSNorm(out_dim), nn.SiLU(), nn.Identity(),  # index 5 was Dropout
            CausalConv3d(out_dim, out_dim, 3, padding=1),
        )
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, cache: CausalCache, into: CausalConv3d | None = None) -> torch.Tensor:
        """``into``: the causal convolution that reads the result next (its cache buffer receives the sum)."""
        if triton_usable(x):
            # CUDA: each RMSNorm + SiLU pair in one pass (float32 inside, one rounding), written
            # straight into the next convolution's cache buffer where there is one.  The
            # convolutions leave out their biases (torch would add each in a pass of its own): the
            # norm adds conv1's, the residual kernel conv2's and the shortcut's, with torch's roundings.
            r = self.residual
            conv_h = isinstance(self.shortcut, CausalConv3d)
            h = self.shortcut(x, bias=False) if conv_h else x
            y = r[2](channel_rms_silu(x, r[0].gamma, out=cache.slot(r[2], x)), cache, bias=False)
            y = r[6](channel_rms_silu(y, r[3].gamma, out=cache.slot(r[6], y), bias=r[2].bias), cache, bias=False)
            out = cache.slot(into, y) if into is not None else None
            return channel_bias_add(y, r[6].bias, h, self.shortcut.bias if conv_h else None, out=out)
        h = self.shortcut(x)
        for layer in self.residual:
            x = layer(x, cache) if isinstance(layer, CausalConv3d) else layer(x)
        out = cache.slot(into, x) if into is not None else None
        return x + h if out is None else torch.add(x, h, out=out)


class AttentionBlock(nn.Module):
    """Single-head self-attention over the pixels of each frame separately."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        identity = x
        b, c, t, h, w = x.shape
        x = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # [B*T, C, H, W]
        qkv = self.to_qkv(self.norm(x)).reshape(b * t, 1, 3 * c, h * w).transpose(2, 3)
        q, k, v = qkv.contiguous().chunk(3, dim=-1)  # each [B*T, 1, H*W, C]
        x = F.scaled_dot_product_attention(q, k, v)
        x = x.squeeze(1).transpose(1, 2).reshape(b * t, c, h, w)
        x = self.proj(x)
        x = x.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)
        # identity first: the sum takes its layout (channels-last 3-D in the CUDA engine), not the
        # 1x1 convolution's (cuDNN runs these in NCHW: neither input strides nor weight say NHWC)
        return identity + x


class Resample(nn.Module):
    """Spatial x2 down/up-sampling, plus a causal x2 in time for the ``*3d`` modes."""

    def __init__(self, dim: int, mode: str):
        super().__init__()
        self.mode = mode
        if mode.startswith("upsample"):
            # index 0 is the (parameter-free) nearest upsampling, done in forward.
            self.resample = nn.Sequential(nn.Identity(), nn.Conv2d(dim, dim // 2, 3, padding=1))
        else:
            # index 0 is ZeroPad2d((0, 1, 0, 1)): pad right/bottom only, then stride 2.
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
        if mode == "upsample3d":
            # each frame becomes two: channels [0:C] and [C:2C] of the output
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        b, c, t, h, w = x.shape
        fast = cache.fast
        copy_up = fast is not None and fast.copy_upsample and self.mode.startswith("upsample")
        up = None  # [B, C, T, 2H, 2W] when the spatial upsampling is done as a copy
        # 1. time upsampling (decoder).  The very first chunk passes through unchanged (one
        # latent frame -> one video frame); the reference then restarts the time conv from
        # zeros, so the first chunk never enters its past: an empty past marks "started".
        if self.mode == "upsample3d":
            if cache.get(self.time_conv) is None:
                cache.put(self.time_conv, x[:, :, :0])
            else:
                x = self.time_conv(x, cache)  # [B, 2C, T, H, W]
                # copy_upsample: the interleave and the spatial upsampling below in one copy
                up = _upsample_copy(x, pairs=True) if copy_up else None
                if up is None:
                    pairs = x.reshape(b, 2, c, t, h, w).permute(0, 2, 3, 1, 4, 5)  # [B, C, T, 2, H, W]
                    if fast is not None and fast.layout and _is_channels_last(x):
                        # one copy straight into a channels-last result (reshape would copy into the
                        # contiguous layout, and the next convolution would convert it back)
                        out = torch.empty((b, c, 2 * t, h, w), device=x.device, dtype=x.dtype,
                                          memory_format=torch.channels_last_3d)
                        out.view(b, c, t, 2, h, w).copy_(pairs)
                        x = out
                    else:
                        x = pairs.reshape(b, c, 2 * t, h, w)
                t = 2 * t

        # 2. spatial resampling, frame by frame  [B*T, C, H, W]
        if copy_up and up is None:
            up = _upsample_copy(x, pairs=False)
        if up is not None:
            x = up.permute(0, 2, 1, 3, 4).reshape(b * t, c, 2 * h, 2 * w)
        else:
            x = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
            if self.mode.startswith("upsample"):
                if fast is not None and fast.native_upsample:
                    # nearest only copies values: the model dtype gives the float32 path's numbers
                    x = F.interpolate(x, scale_factor=2.0, mode="nearest-exact")
                else:
                    # in float32, as the reference's Upsample does
                    x = F.interpolate(x.float(), scale_factor=2.0, mode="nearest-exact").type_as(x)
        conv = self.resample[1]
        if self.mode.startswith("upsample") and triton_usable(x):
            # CUDA, as in ResidualBlock: the bias in one vectorized pass (torch's add_ after cuDNN
            # runs at ~45% of the copy bandwidth on channels-last tensors)
            x = channel_bias_add(F.conv2d(x, conv.weight, None, conv.stride, conv.padding), conv.bias)
        else:
            x = self.resample(x)
        x = x.reshape(b, t, *x.shape[1:]).permute(0, 2, 1, 3, 4)

        # 3. time downsampling (encoder): stride-2 conv over [last frame of the previous
        # chunk, this chunk]; the first chunk (frame 0 alone) passes through.
        if self.mode == "downsample3d":
            past = cache.get(self.time_conv)
            cache.put(self.time_conv, x[:, :, -1:])
            if past is not None:
                x = self.time_conv(torch.cat([past, x], dim=2))
        return x


def _run(layers: nn.Sequential, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
    skip_silu = False
    for i, layer in enumerate(layers):
        if skip_silu:
            skip_silu = False
            continue
        if (isinstance(layer, RMSNorm) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.SiLU)
                and x.dim() == 5 and triton_usable(x)):
            nxt = layers[i + 2] if i + 2 < len(layers) else None
            slot = cache.slot(nxt, x) if isinstance(nxt, CausalConv3d) else None
            x, skip_silu = channel_rms_silu(x, layer.gamma, out=slot), True
        elif isinstance(layer, ResidualBlock):
            # a time upsampling next (past its first chunk): the block's sum goes straight into the
            # time convolution's cache buffer
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            into = (nxt.time_conv if isinstance(nxt, Resample) and nxt.mode == "upsample3d"
                    and cache.get(nxt.time_conv) is not None else None)
            x = layer(x, cache, into)
        elif isinstance(layer, (AttentionBlock, Resample, CausalConv3d)):
            x = layer(x, cache)
        else:
            x = layer(x)
    return x


# ----------------------------------------------------------------------------------------
# Encoder, decoder, the VAE
# ----------------------------------------------------------------------------------------


class Encoder3d(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        dims = [cfg.dim * m for m in (1, *cfg.dim_mult)]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        blocks: list[nn.Module] = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i != len(cfg.dim_mult) - 1:
                blocks.append(Resample(out_dim, "downsample3d" if cfg.temporal_downsample[i] else "downsample2d"))
        self.downsamples = nn.Sequential(*blocks)
        d = dims[-1]
        self.middle = nn.Sequential(ResidualBlock(d, d), AttentionBlock(d), ResidualBlock(d, d))
        # mu and log-variance: 2 * z_dim channels
        self.head = nn.Sequential(RMSNorm(d), nn.SiLU(), CausalConv3d(d, cfg.z_dim * 2, 3, padding=1))

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        x = self.conv1(x, cache)
        x = _run(self.downsamples, x, cache)
        x = _run(self.middle, x, cache)
        return _run(self.head, x, cache)


class Decoder3d(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        mult = cfg.dim_mult
        dims = [cfg.dim * m for m in (mult[-1], *mult[::-1])]
        temporal_upsample = cfg.temporal_downsample[::-1]
        self.conv1 = CausalConv3d(cfg.z_dim, dims[0], 3, padding=1)
        d = dims[0]
        self.middle = nn.Sequential(ResidualBlock(d, d), AttentionBlock(d), ResidualBlock(d, d))
        blocks: list[nn.Module] = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            if i > 0:
                in_dim //= 2  # the previous Resample halved the channels
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i != len(mult) - 1:
                blocks.append(Resample(out_dim, "upsample3d" if temporal_upsample[i] else "upsample2d"))
        self.upsamples = nn.Sequential(*blocks)
        self.head = nn.Sequential(RMSNorm(dims[-1]), nn.SiLU(), CausalConv3d(dims[-1], 3, 3, padding=1))

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        x = self.conv1(x, cache)
        x = _run(self.middle, x, cache)
        x = _run(self.upsamples, x, cache)
        return _run(self.head, x, cache)


class WanVAE(nn.Module):
    """Wan2.1 video VAE: ``encode`` video -> normalised latent, ``decode`` latent -> video.

    ``state_dict()`` keys equal those of the reference ``WanVAE_`` / ``Wan2.1_VAE.pth``.
    Computation runs in the parameters' dtype (the reference pipeline uses bfloat16).
    """

    def __init__(self, cfg: VAEConfig = VAEConfig()):
        super().__init__()
        self.cfg = cfg
        self.z_dim = cfg.z_dim
        self.encoder = Encoder3d(cfg)
        self.conv1 = CausalConv3d(cfg.z_dim * 2, cfg.z_dim * 2, 1)
        self.conv2 = CausalConv3d(cfg.z_dim, cfg.z_dim, 1)
        self.decoder = Decoder3d(cfg)
        self.channels_last = False  # see to_channels_last_()
        self.fast_decode: FastDecode | None = None  # inference-only decode options (CUDA pipeline)

    def to_channels_last_(self) -> "WanVAE":
        """Hold the 3-D conv weights channels-last and decode in that layout (faster cuDNN kernels
        on GPUs; the values are the same).  The state dict keeps its names and shapes."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last_3d)
            elif isinstance(m, nn.Conv2d):
                m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
        self.channels_last = True
        return self

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, 1/std) as [1, Z, 1, 1, 1] on ``like``'s device and dtype."""
        if len(LATENT_MEAN) != self.z_dim:
            raise ValueError(f"latent statistics are defined for z_dim=16, not {self.z_dim}")
        mean = torch.tensor(LATENT_MEAN, device=like.device, dtype=like.dtype).view(1, -1, 1, 1, 1)
        # The reference stores the reciprocal and multiplies/divides by it; keep that rounding.
        inv_std = (1.0 / torch.tensor(LATENT_STD, device=like.device, dtype=torch.float32))
        return mean, inv_std.to(like.dtype).view(1, -1, 1, 1, 1)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """[B, 3, F, H, W] in [-1, 1] -> normalised latent [B, Z, 1 + (F-1)//4, H/8, W/8].

        Frame 0 is encoded alone, then chunks of 4 frames (trailing frames that do not fill
        a chunk are dropped, as in the reference); only the mean of the posterior is used.
        """
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"expected video [B, 3, F, H, W], got {tuple(video.shape)}")
        x = video.to(self.conv1.weight.dtype)
        cache = CausalCache()
        n_chunks = 1 + (x.shape[2] - 1) // TIME_STRIDE
        outs = [self.encoder(x[:, :, :1], cache)]
        for i in range(1, n_chunks):
            outs.append(self.encoder(x[:, :, 1 + TIME_STRIDE * (i - 1): 1 + TIME_STRIDE * i], cache))
        mu = self.conv1(torch.cat(outs, dim=2))[:, : self.z_dim]  # [B, Z, T_lat, H/8, W/8]
        mean, inv_std = self._stats(mu)
        return (mu - mean) * inv_std

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Normalised latent [B, Z, T, h, w] -> video [B, 3, 1 + 4(T-1), 8h, 8w] (not clamped).

        Decodes one latent frame at a time, which bounds memory by one chunk's activations.
        The caller chooses the grad mode (the pipeline runs under inference_mode; training does not).
        """
        if latent.ndim != 5 or latent.shape[1] != self.z_dim:
            raise ValueError(f"expected latent [B, {self.z_dim}, T, h, w], got {tuple(latent.shape)}")
        return torch.cat(list(self.decode_chunks(latent)), dim=2)

    def decode_chunks(self, latent: torch.Tensor):
        """Yield the decoded video one latent frame at a time: [B, 3, 1, H, W], then [B, 3, 4, H, W]
        chunks (what :meth:`decode` concatenates), so a caller can consume frames while the GPU
        decodes the next chunk.  With :attr:`fast_decode` set and autograd off, its options apply
        (``frames_per_chunk`` latent frames per chunk after the first)."""
        if latent.ndim != 5 or latent.shape[1] != self.z_dim:
            raise ValueError(f"expected latent [B, {self.z_dim}, T, h, w], got {tuple(latent.shape)}")
        fast = self.fast_decode if not torch.is_grad_enabled() else None
        z = latent.to(self.conv2.weight.dtype)
        mean, inv_std = self._stats(z)
        x = self.conv2(z / inv_std + mean)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        cache = CausalCache(fast)
        decoder = self._compiled_decoder(fast.compile) if fast is not None and fast.compile else self.decoder
        step = fast.frames_per_chunk if fast is not None else 1
        # frame 0 alone (the time upsampling passes it through), then ``step`` frames at a time
        starts = [0, *range(1, x.shape[2], step)]
        for i, start in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else x.shape[2]
            yield decoder(x[:, :, start:end], cache)

    def _compiled_decoder(self, mode: str):
        """torch.compile of the decoder, made once per mode (kept outside the module tree, so
        ``state_dict()`` keeps its keys)."""
        compiled = self.__dict__.setdefault("_compiled", {})
        if mode not in compiled:
            compiled[mode] = torch.compile(self.decoder, mode=None if mode == "default" else mode)
        return compiled[mode]
