"""The resident pipeline: reference sampling runs end to end, tiny T2V/I2V turns, seeds, cancel,
the prompt cache and request validation."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from _reference import dit_config, fixture, subdict
from engine.api import LaunchConfig, TurnRequest, open_engine
from engine.configs import VAEConfig
from engine.errors import Cancelled, OutOfMemory, ValidationError
from engine.models.wan_dit import WanDiT
from engine.models.wan_vae import WanVAE
from engine.pipeline import denoise, i2v_condition
from engine.sampler import rcm_schedule
from engine.video import read_mp4

# ---------------------------------------------------------------------------------------------
# 1. The reference's generate_t2v / generate_i2v on the fixture's tiny nets, step by step


def _net(tensors, prefix, side):
    cfg = dict(side["config"]["dit"], in_dim=side["config"]["dit"]["in_dim"])
    with torch.device("meta"):
        m = WanDiT(dit_config({"config": cfg}), attention="original", fast_norm=False)
    m.load_state_dict(subdict(tensors, prefix), strict=True, assign=True)
    return m.eval()


def _vae(tensors, side):
    c = side["config"]["vae"]
    vae = WanVAE(VAEConfig(dim=c["dim"], z_dim=c["z_dim"], dim_mult=tuple(c["dim_mult"]),
                           num_res_blocks=c["num_res_blocks"], temporal_downsample=tuple(c["temperal_downsample"])))
    vae.load_state_dict(subdict(tensors, "vae_weights."), strict=True)
    return vae.eval()


class Recorder(torch.nn.Module):
    """Wraps a net and records what it was given and what it answered."""

    def __init__(self, net, log, name="main"):
        super().__init__()
        self.net, self.log, self.name = net, log, name

    def forward(self, x, t, ctx, **kw):
        v = self.net(x, t, ctx, **kw)
        self.log.append((x.clone(), v.clone(), self.name))
        return v


@pytest.mark.parametrize("name, mode", [("sample_t2v", "sde"), ("sample_t2v", "ode"),
                                        ("sample_i2v", "sde"), ("sample_i2v", "ode")])
@torch.no_grad()
def test_reference_sampling_run(name, mode):
    t, side = fixture(name)
    cfg = side["config"]
    tol = dict(atol=side["tolerance"]["atol"], rtol=side["tolerance"]["rtol"])
    log: list = []
    if name == "sample_i2v":
        nets = {k: Recorder(_net(t, f"weights_{k}.", side), log, k) for k in ("high", "low")}
        vae = _vae(t, side)
        y = i2v_condition(vae, t["input.image"], cfg["num_frames"], torch.float32)
        torch.testing.assert_close(y, t["expected.y"], **tol)
        boundary = cfg["boundary"]
    else:
        nets = {"main": Recorder(_net(t, "weights.", side), log)}
        vae, y, boundary = _vae(t, side), None, None
    noises = iter(t[f"input.step_noise.{i}"] for i in range(cfg["num_steps"]))
    rf_t = rcm_schedule(cfg["num_steps"], cfg["sigma_max"])
    latent = denoise(nets, t["input.text_embedding"], y, t["input.init_noise"], rf_t, torch.float32,
                     boundary=boundary, ode=(mode == "ode"), next_noise=lambda: next(noises))
    if mode == "sde" or name == "sample_i2v":
        for i, (x, v, _) in enumerate(log):
            torch.testing.assert_close(x, t[f"expected.{mode}.net_input.{i}"], **tol)
            torch.testing.assert_close(v, t[f"expected.{mode}.v_pred.{i}"], **tol)
    torch.testing.assert_close(latent, t[f"expected.{mode}.samples"], **tol)
    torch.testing.assert_close(vae.decode(latent), t[f"expected.{mode}.video"], **tol)
    if name == "sample_i2v":  # the expert used at each step: high, high, low, low
        assert [n for _, _, n in log] == side["models_used"][mode]


# ---------------------------------------------------------------------------------------------
# 2. Whole turns on the built-in tiny models

SMALL = dict(resolution="192p", aspect_ratio="1:1", num_frames=5, num_steps=2)


@pytest.fixture(scope="module")
def t2v():
    from _tiny import tiny_engine

    return tiny_engine()


def test_tiny_t2v_turn_writes_mp4(t2v, tmp_path):
    events = []
    res = t2v.generate(TurnRequest("a red circle moving left", seed=3, **SMALL), str(tmp_path), events.append)
    assert len(res.video_paths) == 1
    frames = read_mp4(res.video_paths[0])
    assert frames.shape == (5, 192, 192, 3)
    assert (res.width, res.height, res.num_frames) == (192, 192, 5)
    assert res.request.sigma_max == 80.0  # default filled in
    stages = [(e.stage, e.status) for e in events]
    assert stages[0] == ("encode", "start") and stages[-1] == ("write", "end")
    steps = [e for e in events if e.status == "step"]
    assert [e.step for e in steps] == [1, 2]
    assert all(e.preview is not None and len(e.preview.frames[0]) == 3 * e.preview.width * e.preview.height
               for e in steps)
    assert set(res.timings) >= {"encode", "denoise", "denoise.step1", "denoise.step2", "decode", "write"}
    assert res.thumbnail_path and res.thumbnail_path.endswith(".png")


def test_same_seed_same_video_other_seed_differs(t2v, tmp_path):
    req = TurnRequest("two blue squares", seed=11, **SMALL)
    r1 = t2v.generate(req, str(tmp_path))
    r2 = t2v.generate(req, str(tmp_path))
    r3 = t2v.generate(req.replace(seed=12), str(tmp_path))
    assert len({r1.video_paths[0], r2.video_paths[0], r3.video_paths[0]}) == 3  # names never collide
    f1, f2, f3 = (read_mp4(r.video_paths[0]) for r in (r1, r2, r3))
    assert np.array_equal(f1, f2)
    assert not np.array_equal(f1, f3)


def test_same_seed_same_latents(t2v, tmp_path):
    """Determinism below the video writer: the final latents themselves."""
    latents = []
    orig = t2v.vae.decode_chunks

    def spy(z):
        latents.append(z.clone())
        return orig(z)

    t2v.vae.decode_chunks = spy
    try:
        for seed in (5, 5, 6):
            t2v.generate(TurnRequest("x", seed=seed, **SMALL), str(tmp_path))
    finally:
        t2v.vae.decode_chunks = orig
    assert torch.equal(latents[0], latents[1])
    assert not torch.equal(latents[0], latents[2])


def test_prompt_embedding_cache(t2v, tmp_path):
    hits, misses = t2v.cache_hits, t2v.cache_misses
    t2v.generate(TurnRequest("an owl at dusk", seed=1, **SMALL), str(tmp_path))
    t2v.generate(TurnRequest("an owl at dusk", seed=2, sla_topk=0.5, **SMALL), str(tmp_path))
    assert (t2v.cache_misses - misses, t2v.cache_hits - hits) == (1, 1)


def test_cancel_between_steps_then_next_turn_works(t2v, tmp_path):
    seen = []

    def on_progress(ev):
        seen.append(ev)
        if ev.stage == "denoise" and ev.status == "step" and ev.step == 1:
            t2v.cancel()

    req = TurnRequest("slow", **dict(SMALL, num_steps=4))
    with pytest.raises(Cancelled):
        t2v.generate(req, str(tmp_path), on_progress)
    assert max(e.step for e in seen) == 1  # stopped before step 2
    res = t2v.generate(req, str(tmp_path))  # the engine is still usable
    assert len(read_mp4(res.video_paths[0])) == 5


def test_cancel_from_another_thread(t2v, tmp_path):
    started = threading.Event()

    def on_progress(ev):
        if ev.stage == "denoise" and ev.status == "start":
            started.set()
            t2v.cancel()

    with pytest.raises(Cancelled):
        t2v.generate(TurnRequest("x", **SMALL), str(tmp_path), on_progress)
    assert started.is_set()


@pytest.mark.parametrize(
    "changes, field, fragment",
    [
        (dict(num_steps=0), "num_steps", "1 to 4"),
        (dict(num_steps=5), "num_steps", "1 to 4"),
        (dict(sla_topk=0.0), "sla_topk", "(0, 1]"),
        (dict(sla_topk=1.5), "sla_topk", "(0, 1]"),
        (dict(sigma_max=0.0), "sigma_max", "> 0"),
        (dict(sigma_max=-3.0), "sigma_max", "> 0"),
        (dict(num_frames=10), "num_frames", "4k+1"),
        (dict(resolution="1080p"), "resolution", "one of"),
        (dict(aspect_ratio="2:1"), "aspect_ratio", "one of"),
        (dict(prompt="   "), "prompt", "non-empty"),
        (dict(image_path="/nonexistent/cat.png"), "image_path", "not found"),
        (dict(seed=-1), "seed", "whole number"),
        (dict(num_samples=0), "num_samples", "whole number"),
    ],
)
def test_invalid_values_rejected_before_work(t2v, tmp_path, changes, field, fragment):
    calls = []
    with pytest.raises(ValidationError) as e:
        t2v.generate(TurnRequest("ok", **SMALL).replace(**changes), str(tmp_path), calls.append)
    assert e.value.field == field and fragment in str(e.value)
    assert field in str(e.value) and repr(changes.get(field, changes.get("prompt"))) in str(e.value)
    assert calls == []  # no stage started
    assert not any(tmp_path.iterdir())


def test_unreadable_image_and_t2v_with_image(t2v, tmp_path):
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"hello")
    with pytest.raises(ValidationError, match="readable"):
        t2v.generate(TurnRequest("x", image_path=str(bad), **SMALL), str(tmp_path))
    good = tmp_path / "ok.png"
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(good)
    with pytest.raises(ValidationError, match="I2V model"):
        t2v.generate(TurnRequest("x", image_path=str(good), **SMALL), str(tmp_path))


def test_tiny_i2v_turn(tmp_path):
    from PIL import Image

    img = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((120, 200, 3)) * 255).astype(np.uint8)).save(img)
    engine = open_engine(LaunchConfig(model="tiny-i2v"))
    try:
        with pytest.raises(ValidationError, match="image-to-video"):
            engine.generate(TurnRequest("no image", **SMALL), str(tmp_path))
        events = []
        res = engine.generate(TurnRequest("the picture comes alive", image_path=str(img), **SMALL),
                              str(tmp_path), events.append)
        assert read_mp4(res.video_paths[0]).shape == (5, 192, 192, 3)
        assert res.request.sigma_max == 200.0  # the I2V default
        assert "(high)" in events[[e.status for e in events].index("step")].message
        res2 = engine.generate(TurnRequest("adaptive", image_path=str(img), adaptive_resolution=True, **SMALL),
                               str(tmp_path))
        # 200x120 image in a 192x192 budget: h = 16*round(sqrt(36864*0.6)/16), w likewise
        assert (res2.width, res2.height) == (240, 144)
    finally:
        engine.close()


def test_cancel_before_the_turn_starts_still_cancels(t2v, tmp_path):
    t2v.cancel()  # e.g. Esc pressed after submitting, before the worker called generate()
    with pytest.raises(Cancelled):
        t2v.generate(TurnRequest("x", **SMALL), str(tmp_path))
    res = t2v.generate(TurnRequest("x", **SMALL), str(tmp_path))  # the flag is cleared afterwards
    assert res.video_paths


def test_memory_in_use_on_cpu(t2v):
    assert t2v.memory_in_use() > 10 * 2**20  # the process holds the models: at least some MiB


def test_cpu_keeps_the_plain_vae_decode(t2v):
    assert t2v.device.type == "cpu" and t2v.vae.fast_decode is None  # FastDecode is CUDA-only


@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                   RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: not enough memory: out of memory")])
def test_out_of_memory_is_reported_and_engine_stays_usable(t2v, tmp_path, error):
    net = t2v.experts["main"]
    original = net.forward

    def exhausted(*args, **kwargs):  # what the allocator raises when the device is full
        raise error

    net.forward = exhausted
    try:
        with pytest.raises(OutOfMemory) as e:
            t2v.generate(TurnRequest("big", **SMALL), str(tmp_path))
        assert "out of" in str(e.value) and "\n" not in str(e.value)
    finally:
        net.forward = original
    assert t2v.generate(TurnRequest("small again", **SMALL), str(tmp_path)).video_paths


def test_missing_checkpoints_are_named_before_anything_loads(tmp_path):
    from engine.errors import CheckpointError

    with pytest.raises(CheckpointError) as e:
        open_engine(LaunchConfig(model="Wan2.1-1.3B"))
    assert "no DiT checkpoint configured for Wan2.1-1.3B" in str(e.value) and "--dit-path" in str(e.value)
    dit = tmp_path / "dit.pth"
    dit.write_bytes(b"x")
    with pytest.raises(CheckpointError) as e:  # the DiT is there, the VAE path is wrong
        open_engine(LaunchConfig(model="Wan2.1-1.3B", dit_path=str(dit), vae_path=str(tmp_path / "vae.pth")))
    assert "vae.pth: VAE file not found" in str(e.value)
    with pytest.raises(CheckpointError, match="high-noise DiT"):
        open_engine(LaunchConfig(model="Wan2.2-A14B"))


def test_mp4_stream_takes_deferred_chunks(tmp_path):
    """A chunk may be a function called on the writer thread (the CUDA path hands over a wait for
    its asynchronous copy): the file is the same as from plain arrays, and calls happen in order."""
    from engine.video import Mp4Stream

    rng = np.random.default_rng(0)
    chunks = [np.repeat(rng.integers(0, 256, (1, 2, 1, 1, 3), dtype=np.uint8), 32, axis=2).repeat(48, axis=3)
              for _ in range(3)]
    plain = Mp4Stream([tmp_path / "plain.mp4"])
    for c in chunks:
        plain.put(c)
    plain.finish()
    order, writer_threads = [], set()

    def deferred(i):
        def get():
            order.append(i)
            writer_threads.add(threading.current_thread().name)
            return chunks[i]
        return get

    lazy = Mp4Stream([tmp_path / "lazy.mp4"])
    for i in range(3):
        lazy.put(deferred(i))
    lazy.finish()
    assert order == [0, 1, 2] and writer_threads == {"mp4-writer"}
    a, b = read_mp4(tmp_path / "plain.mp4"), read_mp4(tmp_path / "lazy.mp4")
    assert a.shape == (6, 32, 48, 3) and np.array_equal(a, b)
