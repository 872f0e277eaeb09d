"""The pieces of the training recipe that decide whether the tiny model follows its prompts:
the text path, the attribute pre-training, classifier-free guidance, the VAE's object weight,
the validation split, and the whole CLI run end to end at a toy size."""

import json

import torch

from engine.configs import get_preset
from engine.models.umt5 import encode_text
from engine.models.tokenizer import ByteTokenizer
from engine.train.common import new_text_encoder, text_context
from engine.train.evaluate import Guided
from engine.train.text import ATTRIBUTES, AttributeHeads, attribute_loss, targets
from engine.train.vae import object_weight
from engine.train.world import combos, eval_specs, is_held_out, render, sample_spec, validation_specs

P = get_preset("tiny")
CAPTIONS = ["a red circle moving left on a blue background", "grey background with a violet box rising", ""]


def _toy_run(out, teacher_seed: int = 3):
    """A run folder holding what the student and SLA phases read: a random teacher (``teacher_seed``),
    and a text encoder and VAE that are the same in every folder."""
    from engine.train.common import export_dit, new_dit, new_text_encoder, new_vae, preset, save_safetensors

    p = preset("tiny")
    out.mkdir(parents=True, exist_ok=True)
    export_dit(new_dit(p, seed=teacher_seed), out / "teacher.safetensors")
    torch.manual_seed(0)
    save_safetensors(new_text_encoder(p).state_dict(), out / "text_encoder.safetensors")
    save_safetensors(new_vae(p).state_dict(), out / "vae.safetensors")
    return out


def test_short_text_context_equals_the_pipelines_full_length_encoding():
    enc = new_text_encoder(P).eval()
    short = text_context(enc, CAPTIONS, P.text.text_len)
    ids, mask = ByteTokenizer()(CAPTIONS, max_length=P.text.text_len)
    full = encode_text(enc, ids, mask)
    assert short.shape == full.shape == (3, P.text.text_len, P.text.dim)
    torch.testing.assert_close(short, full, rtol=1e-5, atol=1e-6)


def test_attribute_targets_follow_the_clip():
    spec = sample_spec(3, 1, 16, 16)
    want = targets([spec], "cpu")
    assert {n: ATTRIBUTES[n][int(want[n][0])] for n in ATTRIBUTES} == {
        "colour": spec.colour, "shape": spec.shape, "background": spec.background, "motion": spec.motion}


def test_attribute_heads_ignore_rows_past_the_prompt():
    heads = AttributeHeads(8)
    states = torch.randn(2, 6, 8)
    live = torch.tensor([[True] * 3 + [False] * 3] * 2)
    changed = states.clone()
    changed[:, 3:] = 100.0
    a, b = heads(states, live), heads(changed, live)
    for n in a:
        torch.testing.assert_close(a[n], b[n])


def test_attribute_pretraining_lowers_its_loss():
    torch.manual_seed(0)
    enc, heads = new_text_encoder(P), AttributeHeads(P.text.dim)
    opt = torch.optim.AdamW([*enc.parameters(), *heads.parameters()], lr=3e-3)
    specs = [sample_spec(i, 1, 16, 16) for i in range(32)]
    first = None
    for _ in range(25):
        loss, _ = attribute_loss(enc, heads, specs, 96)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


class _Linear(torch.nn.Module):
    """v = x * mean(context): a net whose conditional and unconditional outputs differ."""

    def forward(self, x, t, context, **kw):
        return x * context.mean(dim=(1, 2)).view(-1, 1, 1, 1, 1)


def test_guidance_extrapolates_from_the_unconditional_velocity():
    x, t = torch.randn(2, 1, 1, 2, 2), torch.zeros(2, 1)
    cond, uncond = torch.full((2, 4, 3), 2.0), torch.full((1, 4, 3), 0.5)
    net = _Linear()
    torch.testing.assert_close(Guided(net, uncond, 1.0)(x, t, cond), net(x, t, cond))
    torch.testing.assert_close(Guided(net, uncond, 3.0)(x, t, cond), x * 0.5 + 3.0 * (x * 2.0 - x * 0.5))


def test_object_weight_marks_the_object_not_the_background():
    spec = sample_spec(11, 5, 64, 64)
    video = render([spec], 64, 64)
    w = object_weight(video)[0, 0]  # [F, H, W]
    f = 0
    cx, cy = int(spec.cx[f]), int(spec.cy[f])
    assert w[f, cy, cx] > 1 and w[f, 1, 1] == 1 and w[f, -2, -2] == 1
    assert 0.005 < (w > 1).float().mean() < 0.3


def test_validation_clips_are_trained_combinations_with_unseen_seeds():
    val, held = validation_specs(40, 5, 32), eval_specs(40, 5, 32, 32)
    assert all(not is_held_out(s.colour, s.background, s.motion) for s in val)
    assert all(is_held_out(s.colour, s.background, s.motion) for s in held)
    assert {(s.colour, s.background, s.motion) for s in val} <= set(combos(held_out=False))


def test_cli_runs_every_phase_and_the_checks(tmp_path):
    from engine.train.cli import main

    out = tmp_path / "run"
    main(["all", "--out", str(out), "--size", "32", "--frames", "5", "--batch", "2", "--crop", "32",
          "--text-steps", "2", "--vae-steps", "2", "--teacher-steps", "2", "--student-steps", "2", "--sla-steps", "2",
          "--trajectories", "4", "--bank", "4", "--check-clips", "2"])
    for name in ("text_encoder", "vae", "teacher", "student", "dit", "dit-quant", "student-sla0"):
        assert (out / f"{name}.safetensors").exists(), name
    assert json.loads((out / "guidance.json").read_text())["guidance"] in (1.0, 2.0, 3.5, 5.0)
    log = [json.loads(line) for line in (out / "train.log").read_text().splitlines()]
    checks = {(r["phase"], r["check"]) for r in log if "check" in r}
    assert ("vae", "reconstruction") in checks and ("student", "rcm-4") in checks and ("sla", "rcm-4-sla-0.1") in checks
    assert any(r["phase"] == "text" and "held_out" in r for r in log)


def test_sla_fine_tune_inputs_are_the_dense_samplers_own_states():
    from engine.sampler import sample_rcm
    from engine.train.sla import sampler_states
    from engine.train.student import knots

    class Net(torch.nn.Module):  # a fixed affine velocity, so the sampler's states are known
        def forward(self, x, t, ctx):
            return 0.5 * x + t.view(-1, 1, 1, 1, 1) / 1000

    ks, shape = knots()[:-1], (8, 2, 1, 2, 2)
    states, t = sampler_states(Net(), None, shape, ks, torch.Generator().manual_seed(3), "cpu")
    # the same draws, replayed: the pick, the start noise, then one fresh noise per SDE update
    gen = torch.Generator().manual_seed(3)
    pick = torch.randint(4, (8,), generator=gen)
    init = torch.randn(shape, generator=gen)
    visited = []
    sample_rcm(lambda x, ts, i: Net()(x, ts, None), init, knots(), torch.float64,
               next_noise=lambda: torch.randn(shape, generator=gen),
               before_step=lambda i: None, on_step=lambda info: visited.append(info.x.float()))
    path = [init * ks[0]] + visited[:3]  # the state the net sees at each of the four times
    for b in range(8):
        torch.testing.assert_close(states[b], path[int(pick[b])][b], rtol=1e-5, atol=1e-6)
        assert abs(t[b].item() - ks[int(pick[b])]) < 1e-6
    assert len(set(pick.tolist())) > 1


def test_student_phase_amp_runs_under_bfloat16_autocast(tmp_path, monkeypatch):
    """``--amp`` reaches the student phase: every DiT forward of its trajectories and of its
    training runs under bfloat16 autocast (none without it), and the phase still exports."""
    from engine.models.wan_dit import WanDiT
    from engine.train.common import Budget
    from engine.train.student import train_student

    seen = []
    forward = WanDiT.forward

    def recording(self, *a, **k):
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return forward(self, *a, **k)

    monkeypatch.setattr(WanDiT, "forward", recording)
    for amp in (False, True):
        out = _toy_run(tmp_path / f"amp{amp}")
        seen.clear()
        train_student(out, Budget(2, 60.0), batch=2, size=32, frames=5, trajectories=2, traj_batch=2,
                      check_clips=0, amp=amp)
        assert (out / "student.safetensors").is_file()
        assert len(seen) > 2 and set(seen) == {amp}, (amp, seen)


def test_student_trajectories_are_cached_and_continued(tmp_path):
    """A student phase continues the teacher trajectories a cut-short or earlier call saved (same
    draws as one uninterrupted pass) and recomputes them when the teacher file changes."""
    from engine.train.common import Budget
    from engine.train.student import train_student

    def run_dir(name, seed=3):
        return _toy_run(tmp_path / name, seed)

    def train(out, n):
        train_student(out, Budget(1, 60.0), batch=2, size=32, frames=5, trajectories=n, traj_batch=2, check_clips=0)
        log = [json.loads(line) for line in (out / "train.log").read_text().splitlines()]
        return [r for r in log if "trajectories" in r][-1], torch.load(out / "trajectories.pt", weights_only=True)

    whole = run_dir("whole")
    rec, ref = train(whole, 4)
    assert (rec["trajectories"], rec["new"]) == (4, 4)

    parts = run_dir("parts")
    train(parts, 2)
    rec, got = train(parts, 4)
    assert (rec["trajectories"], rec["new"]) == (4, 2)  # two from the cache, two made
    for k in ("states", "ends", "ctxs"):
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=0)

    rec, _ = train(parts, 4)
    assert (rec["trajectories"], rec["new"]) == (4, 0)
    run_dir("parts", seed=4)  # another teacher: the cache no longer applies
    rec, _ = train(parts, 4)
    assert (rec["trajectories"], rec["new"]) == (4, 4)
    train_student(parts, Budget(1, 60.0), batch=2, size=32, frames=9, trajectories=4, traj_batch=2, check_clips=0)
    rec = [r for r in map(json.loads, (parts / "train.log").read_text().splitlines()) if "trajectories" in r][-1]
    assert (rec["trajectories"], rec["new"]) == (4, 4)  # another clip length: not the cached shapes


def test_student_inputs_renoise_the_end_points_at_the_later_knots():
    from engine.train.student import knots, student_inputs

    g = torch.Generator().manual_seed(0)
    states, ends = torch.randn(4, 6, 2, 1, 2, 2, generator=g), torch.randn(6, 2, 1, 2, 2, generator=g)
    ts = torch.tensor(knots()[:-1])
    idx, k = torch.tensor([0, 1, 2, 3, 4, 5]), torch.tensor([0, 1, 2, 3, 0, 3])
    # renoise 0: the ODE states, and the generator is left alone
    gen = torch.Generator().manual_seed(5)
    assert torch.equal(student_inputs(states, ends, idx, k, ts, gen, 0.0), states[k, idx])
    assert torch.equal(gen.get_state(), torch.Generator().manual_seed(5).get_state())
    # renoise 1: knot 0 keeps the ODE state (the sampler's start is pure noise), the later knots get
    # (1 - t) x0 + t noise with the generator's draws
    got = student_inputs(states, ends, idx, k, ts, torch.Generator().manual_seed(5), 1.0)
    replay = torch.Generator().manual_seed(5)
    torch.rand(6, generator=replay)
    noise = torch.randn(states[k, idx].shape, generator=replay)
    for b in range(6):
        if k[b] == 0:
            assert torch.equal(got[b], states[0, idx[b]])
        else:
            t = ts[k[b]]
            torch.testing.assert_close(got[b], (1 - t) * ends[idx[b]] + t * noise[b])


def test_sla_teacher_target_reuses_the_students_trajectories_under_autocast(tmp_path, monkeypatch):
    """``sla --sla-target teacher --amp``: the SLA phase reads the trajectories the student phase
    cached (it makes none), runs its SLA forwards under bfloat16 autocast, lowers the regression
    loss onto the teacher's end points on a fixed draw, and exports the merged SLA files."""
    from engine.models.wan_dit import WanDiT
    from engine.train import sla as sla_mod
    from engine.train.common import Budget
    from engine.train.student import train_student

    out = _toy_run(tmp_path / "run")
    train_student(out, Budget(1, 60.0), batch=2, size=32, frames=5, trajectories=4, traj_batch=2, check_clips=0, amp=True)

    seen, losses = [], []
    forward = WanDiT.forward

    def recording(self, *a, **k):
        if self.attention == "sla":
            seen.append(torch.is_autocast_enabled("cpu"))
        return forward(self, *a, **k)

    monkeypatch.setattr(WanDiT, "forward", recording)
    log_losses = sla_mod.run_phase

    def keep_losses(phase, out_, budget, models, opt, lr, warmup, step_loss, **kw):
        def fixed(step):  # the same draw every step: its loss must fall
            loss, extra = step_loss(0)
            losses.append(loss.item())
            return loss, extra
        return log_losses(phase, out_, budget, models, opt, lr, warmup, fixed, **kw)

    monkeypatch.setattr(sla_mod, "run_phase", keep_losses)
    sla_mod.train_sla(out, Budget(6, 60.0), batch=2, size=32, frames=5, lr=3e-3, rest_lr_scale=1.0, check_clips=0,
                      target="teacher", amp=True, renoise=0.5, trajectories=4, traj_batch=2, traj_seconds=0.0)
    rec = [r for r in map(json.loads, (out / "train.log").read_text().splitlines()) if "trajectories" in r]
    assert rec[-1]["phase"] == "sla" and (rec[-1]["trajectories"], rec[-1]["new"]) == (4, 0)
    assert len(seen) == 6 and all(seen)
    assert losses[-1] < losses[0], losses
    for name in ("dit", "dit-quant", "student-sla0"):
        assert (out / f"{name}.safetensors").is_file()


def test_init_starts_a_phase_from_the_given_file(tmp_path):
    """``--init``: the student starts from the given file, not the teacher; the teacher from the
    given file, not fresh weights (zero steps: the exported file is the start)."""
    from safetensors.torch import load_file

    from engine.train.cli import main
    from engine.train.common import export_dit, new_dit, preset

    out = _toy_run(tmp_path / "run")
    export_dit(new_dit(preset("tiny"), seed=4), tmp_path / "earlier.safetensors")
    want = load_file(str(tmp_path / "earlier.safetensors"))
    small = ["--size", "32", "--frames", "5", "--batch", "2", "--check-clips", "0",
             "--init", str(tmp_path / "earlier.safetensors")]
    for phase in ("student", "teacher"):
        before = load_file(str(out / "teacher.safetensors"))  # the seed-3 teacher both times
        assert main([phase, "--out", str(out), f"--{phase}-steps", "0", "--trajectories", "2", "--bank", "2", *small]) == 0
        got = load_file(str(out / f"{phase}.safetensors"))
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want), phase
        assert not all(torch.equal(got[k], before[k]) for k in before), phase


def test_sla_init_continues_an_earlier_fine_tune(tmp_path, capsys):
    """``sla --init``: the SLA model starts from the given SLA-layout file, ``proj_l`` included
    (zero steps: the written dit.safetensors is that file, not the student with zero proj_l).
    Run again in the same folder, the phase resumes its state file instead, and says so."""
    from safetensors.torch import load_file

    from engine.train.cli import main
    from engine.train.common import export_dit, new_dit, preset

    out = _toy_run(tmp_path / "run")
    export_dit(new_dit(preset("tiny"), seed=6), out / "student.safetensors")
    earlier = new_dit(preset("tiny"), "sla", seed=5)
    with torch.no_grad():
        for name, prm in earlier.named_parameters():
            if ".proj_l." in name:
                prm.normal_(0, 0.02)
    export_dit(earlier, tmp_path / "earlier.safetensors")
    want = load_file(str(tmp_path / "earlier.safetensors"))
    small = ["sla", "--out", str(out), "--sla-steps", "0", "--size", "32", "--frames", "5", "--batch", "2",
             "--check-clips", "0", "--init"]
    assert main([*small, str(tmp_path / "earlier.safetensors")]) == 0
    got = load_file(str(out / "dit.safetensors"))  # student + (tuned - student): tuned, to rounding
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6, msg=k)
    assert any(".proj_l." in k and want[k].abs().sum() > 0 for k in want)
    sla0 = load_file(str(out / "student-sla0.safetensors"))  # the benchmark's "before" stays the student
    assert not all(torch.equal(sla0[k], want[k]) for k in want)

    capsys.readouterr()
    export_dit(new_dit(preset("tiny"), "sla", seed=8), tmp_path / "other.safetensors")
    assert main([*small, str(tmp_path / "other.safetensors")]) == 0
    cap = capsys.readouterr()
    assert "sla.state.pt exists, so sla resumes it and --init is not used" in cap.err, cap.err
    assert '"resumed"' in cap.out
    again = load_file(str(out / "dit.safetensors"))
    for k in want:
        torch.testing.assert_close(again[k], want[k], rtol=0, atol=1e-6, msg=k)


def test_cli_reports_a_missing_mismatched_or_quantized_file_in_one_line(tmp_path, capsys):
    from engine.train.cli import main
    from engine.train.common import export_dit, new_dit, preset

    assert main(["student", "--out", str(tmp_path / "empty"), "--check-clips", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "teacher.safetensors: file not found" in err, err

    export_dit(new_dit(preset("tiny"), seed=1), tmp_path / "tiny.safetensors")
    export_dit(new_dit(preset("tiny-w128d4"), seed=2), tmp_path / "other.safetensors")  # another size
    assert main(["merge", str(tmp_path / "tiny.safetensors"), str(tmp_path / "other.safetensors"),
                 str(tmp_path / "tiny.safetensors"), str(tmp_path / "out.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "shapes differ" in err, err
    assert not (tmp_path / "out.safetensors").exists()

    # --init with a -quant file: no float weights to train from
    export_dit(new_dit(preset("tiny"), seed=1), tmp_path / "tiny-quant.safetensors", quant=True)
    out = _toy_run(tmp_path / "run")
    assert main(["teacher", "--out", str(out), "--init", str(tmp_path / "tiny-quant.safetensors"),
                 "--teacher-steps", "0", "--bank", "2", "--size", "32", "--frames", "5", "--check-clips", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a -quant one" in err, err
