"""The resident generation pipeline: models load once, then any number of turns run on them.

``ResidentPipeline`` implements the :class:`engine.api.Engine` protocol.  A turn is written
out as numbered steps — validate, encode, noise, denoise, decode, write — each reporting
:class:`~engine.api.ProgressEvent` objects; ``cancel()`` stops a turn between steps.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from engine import loading
from engine.api import (
    EngineInfo, LaunchConfig, ProgressCallback, ProgressEvent, TurnRequest, TurnResult, adaptive_size,
)
from engine.assets import shipped_checkpoints
from engine.checkpoint import file_summary
from engine.configs import ModelPreset, get_preset
from engine.errors import Cancelled, CheckpointError, EngineError, OutOfMemory, TurboError, ValidationError
from engine.graphs import GraphedDiT, compile_blocks_
from engine.models.tokenizer import load_tokenizer
from engine.models.umt5 import encode_text
from engine.models.wan_vae import FastDecode
from engine.preview import make_preview
from engine.sampler import expert_for_steps, rcm_schedule, sample_rcm
from engine.video import Mp4Stream, unique_path, write_png

PROMPT_CACHE_SIZE = 32
TIME_UPSAMPLE = 4  # video frames per latent frame after the first (the VAE's temporal stride)
TINY_SEED = 20251218  # fixed seed of the built-in random-weight tiny models
VAE_CHANNELS_LAST = True  # on CUDA (measured: see BENCHMARKS.md "Full-size turn")
# Inference-only VAE decode options on CUDA (None: the plain chunked decode).  Both keep the plain
# path's values exactly; bench/vae_decode.py times every option and its agreement.  Measured on an
# H200 (BENCHMARKS.md "Full-size turn"): FastDecode() 0.99 s, 3.66 GiB peak above the weights;
# + static_cache 0.85 s, 6.23 GiB.  static_cache costs ~2.6 GiB more peak, so it is used only on
# GPUs with at least VAE_STATIC_CACHE_MIN_BYTES of memory (a 1.3B turn must fit a 24 GB card).
# Later on an H100 (session 5, with fused conv biases and the copy upsampling): static_cache 0.745 s,
# the whole 1.3B turn peaking at 19.44 GiB.  An offload option asks for low memory and never gets
# the static cache (session 6, H100, text encoder offloaded: 8.87 -> 6.45 GiB peak, decode +0.2 s).
VAE_FAST_DECODE: FastDecode | None = FastDecode()  # GPUs below the threshold
VAE_FAST_DECODE_LARGE_GPU: FastDecode | None = FastDecode(static_cache=True)
VAE_STATIC_CACHE_MIN_BYTES = 40 * 2**30
# What LaunchConfig.compile does on CUDA: replay the DiT forward as a CUDA graph (not with
# --offload-inactive-expert, whose weights move) and/or torch.compile each DiT block.  Measured on
# an H200 (2026-11-22): the 4-step 1.3B loop is GPU-bound, graph 0.896 s vs eager 0.900 s (no
# gain; harmless, and its loop peak is lower), so --compile stays off by default.  torch.compile
# of the blocks failed there (InductorError in the SLA Triton kernel), hence None.
COMPILE_DIT_GRAPH = True
COMPILE_DIT_BLOCKS: str | None = None  # torch.compile mode ("default", ...) or None: not compiled


def vae_fast_decode_for(total_memory: int, low_memory: bool = False) -> FastDecode | None:
    """The CUDA VAE decode options for a GPU with ``total_memory`` bytes (its total, not free).
    ``low_memory`` (an offload option was asked for): never the static cache, whatever the GPU."""
    if low_memory or total_memory < VAE_STATIC_CACHE_MIN_BYTES:
        return VAE_FAST_DECODE
    return VAE_FAST_DECODE_LARGE_GPU


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValidationError("device", name, "a device this machine has (no CUDA GPU found: use cpu or auto)")
    return dev


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def i2v_condition(vae: torch.nn.Module, image: torch.Tensor, num_frames: int, dtype: torch.dtype) -> torch.Tensor:
    """I2V conditioning (FORMATS.md section 9): y = [mask, VAE latent of (image, zeros...)].

    image: [3, h, w] in [-1, 1] -> y [1, 4 + 16, T_lat, h/8, w/8] in ``dtype``; the mask is 1 on
    latent frame 0.  The whole clip is encoded, not just the image, as the reference does.
    """
    _, h, w = image.shape
    clip = torch.zeros(1, 3, num_frames, h, w, device=image.device, dtype=dtype)
    clip[:, :, 0] = image.to(dtype)
    latents = vae.encode(clip)  # [1, 16, T, h/8, w/8]
    mask = torch.zeros(1, 4, latents.shape[2], h // 8, w // 8, device=image.device, dtype=latents.dtype)
    mask[:, :, 0] = 1
    return torch.cat([mask, latents], dim=1).to(dtype)


def denoise(
    nets: dict[str, Callable[..., torch.Tensor]], context: torch.Tensor, y: torch.Tensor | None, init_noise: torch.Tensor,
    rf_t: list[float], dtype: torch.dtype, *, boundary: float | None = None, ode: bool = False,
    sla_topk: float | None = None, next_noise: Callable[[], torch.Tensor] | None = None,
    on_step: Callable | None = None, before_step: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """The rCM loop over one DiT (``nets["main"]``) or an I2V expert pair (``"high"``/``"low"``,
    switching below ``boundary``).  A net may be a :class:`~engine.graphs.GraphedDiT`.  Returns the
    final latent (float32)."""
    names = expert_for_steps(rf_t, boundary) if "high" in nets else ["main"] * (len(rf_t) - 1)

    def velocity(x: torch.Tensor, timesteps: torch.Tensor, i: int) -> torch.Tensor:
        return nets[names[i]](x, timesteps, context, y_B_C_T_H_W=y, sla_topk=sla_topk)

    return sample_rcm(velocity, init_noise, rf_t, dtype, ode=ode, next_noise=next_noise,
                      on_step=on_step, before_step=before_step)


def _host_frames(frames: torch.Tensor, done: "torch.cuda.Event") -> np.ndarray:
    """The writer thread's view of a chunk copied asynchronously: waits for the copy (the wait
    releases the GIL), then shares the pinned memory as an array."""
    done.synchronize()
    return frames.numpy()


def to_uint8_frames_torch(video: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`engine.video.to_uint8_frames` for a batch: [B, 3, F, H, W] -> uint8
    [B, F, H, W, 3], the same float32 operations in the same order (bit-identical values)."""
    x = video.float().clamp(-1.0, 1.0)
    x = torch.floor((x + 1.0) / 2.0 * 255.0 + 0.5).to(torch.uint8)
    return x.permute(0, 2, 3, 4, 1).contiguous()


class _Turn:
    """Book-keeping for one running turn: timings and progress events."""

    def __init__(self, on_progress: ProgressCallback | None, total_steps: int):
        self.t0 = time.perf_counter()
        self.on_progress = on_progress
        self.total_steps = total_steps
        self.timings: dict[str, float] = {}
        self.step_times: list[float] = []

    def emit(self, stage: str, status: str, **kw: Any) -> None:
        if self.on_progress is not None:
            self.on_progress(ProgressEvent(stage=stage, status=status, total_steps=self.total_steps,
                                           elapsed_s=time.perf_counter() - self.t0, **kw))

    @contextlib.contextmanager
    def stage(self, name: str, device: torch.device):
        self.emit(name, "start")
        start = time.perf_counter()
        yield
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - start
        self.timings[name] = self.timings.get(name, 0.0) + dt
        self.emit(name, "end", stage_s=dt)


class ResidentPipeline:
    """Holds tokenizer, text encoder, DiT expert(s) and VAE on one device; runs turns."""

    def __init__(self, launch: LaunchConfig, on_progress: ProgressCallback | None = None):
        launch.validate()
        launch = launch.replace(attention=launch.resolved_attention())  # "auto" -> this model's backend
        self.launch = launch
        self.preset: ModelPreset = get_preset(launch.model)
        self.device = resolve_device(launch.device)
        self.dtype = resolve_dtype(launch.dtype, self.device)
        if launch.attention == "spargeattn":  # optional package: say so before loading anything
            from kernels.sparge import unavailable_reason

            why = unavailable_reason(self.device, self.preset.dit.head_dim)
            if why:
                raise ValidationError("attention", "spargeattn", why)
        self._cancel = threading.Event()
        self._lock = threading.Lock()  # one turn at a time
        self._prompt_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.cache_hits = 0
        self.cache_misses = 0
        t0 = time.perf_counter()
        if on_progress:
            on_progress(ProgressEvent("load", "start", message=f"loading {launch.model}"))
        self._load_models()
        if self.device.type == "cuda":
            # Fixed shapes turn after turn: let cuDNN time its algorithms once (VAE 3-D convs),
            # and keep the VAE channels-last (faster 3-D convolutions on tensor cores).
            torch.backends.cudnn.benchmark = True
            if VAE_CHANNELS_LAST and hasattr(self.vae, "to_channels_last_"):
                self.vae.to_channels_last_()
            self.vae.fast_decode = vae_fast_decode_for(
                torch.cuda.get_device_properties(self.device).total_memory,
                low_memory=launch.offload_text_encoder or launch.offload_inactive_expert)
        self.load_s = time.perf_counter() - t0
        if on_progress:
            on_progress(ProgressEvent("load", "end", elapsed_s=self.load_s, stage_s=self.load_s,
                                      message=f"{launch.model} ready on {self.device}"))

    # ------------------------------------------------------------------ loading

    def _load_models(self) -> None:
        launch, preset, dev, dt = self.launch, self.preset, self.device, self.dtype
        # The built-in tiny model's trained weights ship in engine/assets; they serve when no
        # checkpoint is configured (--random-weights keeps the random model).
        shipped = {} if launch.random_weights else shipped_checkpoints(launch.model, launch.quant_linear,
                                                                      launch.attention)
        if shipped and not (launch.dit_path or launch.vae_path or launch.text_encoder_path):
            launch = launch.replace(**{f"{role}_path": path for role, path in shipped.items()})
        files_optional = launch.model.startswith("tiny") or launch.random_weights

        def need(path: str | None, flag: str, key: str, what: str) -> str | None:
            if path:
                if not os.path.isfile(os.path.expanduser(path)):
                    raise CheckpointError(path, f"{what} file not found", f"check {flag} or checkpoints.{key}")
                return path
            if files_optional:
                return None
            raise CheckpointError(f"<{what}>", f"no {what} checkpoint configured for {launch.model}",
                                  f"pass {flag} FILE or set checkpoints.{key} in the config file")

        # Every file is checked before anything loads, so a missing one costs no waiting.
        if preset.i2v:
            dit_paths = {
                "high": need(launch.high_noise_model_path, "--high-noise-model-path", "high_noise", "high-noise DiT"),
                "low": need(launch.low_noise_model_path, "--low-noise-model-path", "low_noise", "low-noise DiT"),
            }
        else:
            dit_paths = {"main": need(launch.dit_path, "--dit-path", "dit", "DiT")}
        vae_path = need(launch.vae_path, "--vae-path", "vae", "VAE")
        t5_path = need(launch.text_encoder_path, "--text-encoder-path", "text_encoder", "umT5 text encoder")

        # Random-weight benchmarks need token ids of the right shape only: the built-in
        # byte tokenizer serves when the umT5 tokenizer files are not there.
        kind = "bytes" if launch.random_weights and not launch.tokenizer_path else preset.tokenizer
        self.tokenizer = load_tokenizer(kind, launch.tokenizer_path)
        text_dev = torch.device("cpu") if launch.offload_text_encoder else dev
        self.text_encoder = (
            loading.load_text_encoder(t5_path, preset.text, device=text_dev, dtype=dt) if t5_path
            else loading.build_random_text_encoder(preset.text, TINY_SEED, device=text_dev, dtype=dt)
        )
        self.vae = (
            loading.load_vae(vae_path, preset.vae, device=dev, dtype=dt) if vae_path
            else loading.build_random_vae(preset.vae, TINY_SEED + 1, device=dev, dtype=dt)
        )

        dit_kw = dict(attention=launch.attention, quant_linear=launch.quant_linear,
                      fast_norm=not launch.default_norm, dtype=dt)

        def dit(path: str | None, seed: int, device: torch.device) -> torch.nn.Module:
            if path:
                return loading.load_dit(path, preset.dit, device=device, **dit_kw)
            return loading.build_random_dit(preset.dit, seed, device=device, **dit_kw)

        self.experts: dict[str, torch.nn.Module] = {}
        if preset.i2v:
            low_dev = torch.device("cpu") if launch.offload_inactive_expert else dev
            self.experts["high"] = dit(dit_paths["high"], TINY_SEED + 2, dev)
            self.experts["low"] = dit(dit_paths["low"], TINY_SEED + 3, low_dev)
        else:
            self.experts["main"] = dit(dit_paths["main"], TINY_SEED + 2, dev)
        # --compile (CUDA): the denoise loop calls these instead of the bare experts.
        self._runners: dict[str, Callable[..., torch.Tensor]] = dict(self.experts)
        if launch.compile and dev.type == "cuda":
            for name, m in self.experts.items():
                if COMPILE_DIT_BLOCKS:
                    compile_blocks_(m, None if COMPILE_DIT_BLOCKS == "default" else COMPILE_DIT_BLOCKS)
                if COMPILE_DIT_GRAPH and not launch.offload_inactive_expert:
                    self._runners[name] = GraphedDiT(m)
        self.checkpoints = {
            role: file_summary(p) for role, p in (
                ("dit", launch.dit_path), ("high_noise", launch.high_noise_model_path),
                ("low_noise", launch.low_noise_model_path), ("vae", launch.vae_path),
                ("text_encoder", launch.text_encoder_path),
            ) if p
        }

    # ------------------------------------------------------------------ Engine protocol

    def info(self) -> EngineInfo:
        return EngineInfo(model=self.launch.model, device=str(self.device), dtype=str(self.dtype).replace("torch.", ""),
                          attention=self.launch.attention, quant_linear=self.launch.quant_linear,
                          i2v=self.preset.i2v, checkpoints=dict(self.checkpoints))

    def memory_in_use(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.memory_allocated(self.device))
        try:  # CPU: the process's resident set (Linux)
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    def cancel(self) -> None:
        self._cancel.set()

    def close(self) -> None:
        self.experts.clear()
        self._runners.clear()
        self._prompt_cache.clear()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def generate(self, request: TurnRequest, output_dir: str,
                 on_progress: ProgressCallback | None = None) -> TurnResult:
        # 1. validate: everything is checked before any work starts
        request.validate()
        self._check_mode(request)
        request = request.replace(sigma_max=request.effective_sigma_max)
        with self._lock:
            # The cancel flag is cleared when a turn ends, not when it starts, so a cancel that
            # arrives between submitting a turn and its start still stops it.
            try:
                return self._run(request, Path(output_dir), on_progress)
            except torch.cuda.OutOfMemoryError:
                self._recover()
                raise OutOfMemory(
                    "out of GPU memory during the turn (try fewer frames, a lower resolution, "
                    "--quant-linear or --offload-text-encoder); the engine is still usable"
                ) from None
            except TurboError:
                raise
            except RuntimeError as e:
                if "out of memory" in str(e).lower():
                    self._recover()
                    raise OutOfMemory(f"out of memory during the turn ({str(e).splitlines()[0][:120]})") from None
                raise EngineError(f"the turn failed: {str(e).splitlines()[0][:200]}") from e
            finally:
                self._cancel.clear()

    # ------------------------------------------------------------------ the turn

    def _check_mode(self, request: TurnRequest) -> None:
        if request.image_path and not self.preset.i2v:
            raise ValidationError("image_path", request.image_path,
                                  f"only with an I2V model ({self.launch.model} is text-to-video; "
                                  "use --model Wan2.2-A14B or tiny-i2v)")
        if self.preset.i2v and not request.image_path:
            raise ValidationError("image_path", None, f"an input image: {self.launch.model} is image-to-video")

    def _recover(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _check_cancel(self, _step: int = 0) -> None:
        if self._cancel.is_set():
            raise Cancelled()

    @torch.inference_mode()
    def _run(self, req: TurnRequest, out_dir: Path, on_progress: ProgressCallback | None) -> TurnResult:
        dev, dt = self.device, self.dtype
        turn = _Turn(on_progress, req.num_steps)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)

        # 2. encode: prompt (cached) and, for I2V, the conditioning image
        with turn.stage("encode", dev):
            context = self._encode_prompt(req.prompt).repeat(req.num_samples, 1, 1)
            if req.image_path:
                width, height, y = self._encode_image(req)
            else:
                (width, height), y = req.size, None
        self._check_cancel()

        # 3. noise: one generator on the model device, re-seeded every turn
        t_lat = 1 + (req.num_frames - 1) // 4
        shape = (req.num_samples, self.preset.vae.z_dim, t_lat, height // 8, width // 8)
        gen = torch.Generator(device=dev).manual_seed(req.seed)
        init_noise = torch.randn(shape, generator=gen, device=dev, dtype=torch.float32)

        # 4. denoise: the rCM loop, one progress event (with a live preview) per step
        rf_t = rcm_schedule(req.num_steps, req.effective_sigma_max)
        experts = expert_for_steps(rf_t, req.boundary) if self.preset.i2v else ["main"] * req.num_steps
        step_start = [time.perf_counter()]

        def on_step(info) -> None:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            now = time.perf_counter()
            dt_step = now - step_start[0]
            step_start[0] = now
            turn.step_times.append(dt_step)
            turn.timings[f"denoise.step{info.index + 1}"] = dt_step
            remaining = req.num_steps - info.index - 1
            eta = remaining * (sum(turn.step_times) / len(turn.step_times))
            turn.emit("denoise", "step", step=info.index + 1, eta_s=eta,
                      message=f"step {info.index + 1}/{req.num_steps} ({experts[info.index]})",
                      preview=make_preview(info.x0[0]))
            if info.index + 1 < req.num_steps:
                self._expert(experts[info.index + 1])  # offloading: bring the next expert in

        with turn.stage("denoise", dev):
            self._expert(experts[0])
            step_start[0] = time.perf_counter()
            latent = denoise(
                self._runners, context, y, init_noise, rf_t, dt, boundary=req.boundary, ode=req.ode,
                sla_topk=req.sla_topk, on_step=on_step, before_step=self._check_cancel,
                next_noise=lambda: torch.randn(shape, generator=gen, device=dev, dtype=torch.float32),
            )
        self._check_cancel()

        # 5-6. decode and write: one mp4 per sample plus a thumbnail
        paths, thumb, num_frames = self._decode_and_write(latent, req, out_dir, turn)

        total = time.perf_counter() - turn.t0
        return TurnResult(
            request=req, video_paths=tuple(paths), thumbnail_path=str(thumb), timings=dict(turn.timings),
            total_s=total, peak_memory_bytes=self._peak_memory(), width=width, height=height,
            num_frames=num_frames, launch=self.launch_summary(), device=str(dev),
        )

    def _decode_and_write(self, latent: torch.Tensor, req: TurnRequest, out_dir: Path,
                          turn: "_Turn") -> tuple[list[str], str, int]:
        """Decode chunk by chunk (one latent frame at a time, with causal caches, so memory does
        not grow with the clip), convert to uint8 on the model's device and hand each chunk to
        the mp4 writers' thread, so H.264 encoding runs while the next chunk decodes.
        Stage "decode" is the decode (with the overlapped encoding); "write" what is left to finish."""
        dev = self.device
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = time.strftime("turn-%Y%m%d-%H%M%S") + f"-s{req.seed}"
        n = latent.shape[0]
        mp4s = [unique_path(out_dir, stem if n == 1 else f"{stem}-{i}", ".mp4") for i in range(n)]
        total_frames = 1 + TIME_UPSAMPLE * (latent.shape[2] - 1)
        middle = None  # (uint8 frames [B, T, H, W, 3] -- host tensor or array --, frame index)
        stream = Mp4Stream(mp4s)
        async_copy = dev.type == "cuda"
        try:
            with turn.stage("decode", dev):
                seen = 0
                for chunk in self.vae.decode_chunks(latent.to(self.dtype)):
                    u8 = to_uint8_frames_torch(chunk)  # [B, T, H, W, 3] on the device
                    if async_copy:
                        # Copy into pinned memory without waiting: the writer thread waits for the
                        # copy, so the next chunk's decode is queued at once instead of after a sync.
                        frames = torch.empty(u8.shape, dtype=torch.uint8, pin_memory=True)
                        frames.copy_(u8, non_blocking=True)
                        done = torch.cuda.Event()
                        done.record()
                        stream.put(functools.partial(_host_frames, frames, done))
                    else:
                        frames = u8.cpu().numpy()
                        stream.put(frames)
                    t = frames.shape[1]
                    if seen <= total_frames // 2 < seen + t:
                        middle = (frames, total_frames // 2 - seen)
                    seen += t
        except BaseException:
            with contextlib.suppress(BaseException):
                stream.finish()
            raise
        with turn.stage("write", dev):
            paths = stream.finish()  # every copy has landed once the writers are done
            mid = middle[0][0, middle[1]]
            thumb = write_png(np.array(mid.numpy() if isinstance(mid, torch.Tensor) else mid),
                              unique_path(out_dir, stem, ".png"))
        return paths, str(thumb), seen

    def _expert(self, name: str) -> torch.nn.Module:
        """The DiT for this step; with offloading, the other I2V expert goes to the CPU."""
        net = self.experts[name]
        if self.launch.offload_inactive_expert and len(self.experts) > 1:
            for other, m in self.experts.items():
                if other != name:
                    m.to("cpu")
            net.to(self.device)
        return net

    def _encode_prompt(self, prompt: str) -> torch.Tensor:
        """[1, 512, text_dim] embedding, from the cache when this prompt was seen before."""
        hit = self._prompt_cache.get(prompt)
        if hit is not None:
            self._prompt_cache.move_to_end(prompt)
            self.cache_hits += 1
            return hit
        self.cache_misses += 1
        enc_dev = next(self.text_encoder.parameters()).device
        if self.launch.offload_text_encoder and self.device.type == "cuda":
            self.text_encoder.to(self.device)
            enc_dev = self.device
        ids, mask = self.tokenizer([prompt], max_length=self.preset.text.text_len)
        emb = encode_text(self.text_encoder, ids.to(enc_dev), mask.to(enc_dev))
        if self.launch.offload_text_encoder:
            self.text_encoder.to("cpu")
        emb = emb.to(device=self.device, dtype=self.dtype)
        self._prompt_cache[prompt] = emb
        if len(self._prompt_cache) > PROMPT_CACHE_SIZE:
            self._prompt_cache.popitem(last=False)
        return emb

    def _encode_image(self, req: TurnRequest) -> tuple[int, int, torch.Tensor]:
        """I2V conditioning (FORMATS.md section 9): VAE latent of [image, zeros...] + a frame-0 mask."""
        from PIL import Image

        with Image.open(req.image_path) as im:
            im = im.convert("RGB")
            if req.adaptive_resolution:
                width, height = adaptive_size(req.resolution, req.aspect_ratio, im.width, im.height)
            else:
                width, height = req.size
            im = im.resize((width, height), Image.BILINEAR)
            pixels = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)  # [h, w, 3] in [0, 1]
        image = ((pixels - 0.5) / 0.5).permute(2, 0, 1).to(self.device)  # [3, h, w] in [-1, 1]
        y = i2v_condition(self.vae, image, req.num_frames, self.dtype)
        return width, height, y.repeat(req.num_samples, 1, 1, 1, 1)

    def _peak_memory(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB

    def launch_summary(self) -> dict[str, Any]:
        return {
            "model": self.launch.model, "attention": self.launch.attention,
            "quant_linear": self.launch.quant_linear, "default_norm": self.launch.default_norm,
            "dtype": str(self.dtype).replace("torch.", ""), "device": str(self.device),
            "checkpoints": dict(self.checkpoints),
        }
