"""The merge tool's arithmetic, and training exports reloading through engine.loading."""

import pytest
import torch

from engine import loading
from engine.configs import get_preset
from engine.train.common import export_dit, new_dit, new_text_encoder, new_vae, save_safetensors
from engine.train.merge import merge_files, merge_state_dicts


def test_merge_is_base_plus_tuned_minus_pretrained():
    base = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([10.0]), "only_base": torch.tensor([7.0])}
    pre = {"a": torch.tensor([0.5, 0.5]), "b": torch.tensor([4.0])}
    tuned = {"a": torch.tensor([1.5, 0.0]), "b": torch.tensor([4.0]), "proj_l": torch.tensor([3.0])}
    out = merge_state_dicts(base, tuned, pre)
    assert torch.equal(out["a"], torch.tensor([2.0, 1.5]))  # 1 + (1.5 - .5), 2 + (0 - .5)
    assert torch.equal(out["b"], torch.tensor([10.0]))  # unchanged by the fine-tune
    assert torch.equal(out["proj_l"], torch.tensor([3.0]))  # new in the tuned file: taken as is
    assert torch.equal(out["only_base"], torch.tensor([7.0]))
    # base dtype is kept, arithmetic in float32
    out16 = merge_state_dicts({"a": torch.tensor([1.0], dtype=torch.bfloat16)}, {"a": torch.tensor([3.0])},
                              {"a": torch.tensor([1.0])})
    assert out16["a"].dtype == torch.bfloat16 and out16["a"].item() == 3.0


def test_merge_rejects_mismatches():
    with pytest.raises(ValueError, match="shapes differ"):
        merge_state_dicts({"a": torch.zeros(2)}, {"a": torch.zeros(3)}, {"a": torch.zeros(2)})
    with pytest.raises(ValueError, match="not a float"):
        merge_state_dicts({"a": torch.zeros(2, dtype=torch.int8)}, {"a": torch.zeros(2)}, {"a": torch.zeros(2)})
    with pytest.raises(ValueError, match="pretrained"):
        merge_state_dicts({"a": torch.zeros(2)}, {"a": torch.zeros(2)}, {})


def _dit_inputs(cfg):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(1, 16, 2, 8, 8, generator=g), torch.full((1, 1), 700.0),
            torch.randn(1, 512, cfg.text_dim, generator=g))


def test_exported_dit_reloads_plain_sla_and_quant(tmp_path):
    p = get_preset("tiny")
    torch.manual_seed(0)
    model = new_dit(p, "sla", seed=3)
    with torch.no_grad():  # non-zero head and proj_l so the comparison means something
        for prm in model.parameters():
            prm.add_(0.02 * torch.randn_like(prm))
    model.eval()
    x, t, ctx = _dit_inputs(p.dit)
    with torch.no_grad():
        ref = model(x, t, ctx, sla_topk=0.3)
    plain = export_dit(model, tmp_path / "dit.safetensors")
    quant = export_dit(model, tmp_path / "dit-quant.safetensors", quant=True)
    m1 = loading.load_dit(plain, p.dit, attention="sla", dtype=torch.float32)
    m2 = loading.load_dit(quant, p.dit, attention="sla", dtype=torch.float32)
    assert any("int8" in n for n in m2.load_notes)
    with torch.no_grad():
        torch.testing.assert_close(m1(x, t, ctx, sla_topk=0.3), ref)
        out_q = m2(x, t, ctx, sla_topk=0.3)
    assert (out_q - ref).abs().mean() < 0.05 * ref.abs().mean() + 1e-3
    # a dense model loads the SLA file by ignoring proj_l
    loading.load_dit(plain, p.dit, attention="original", dtype=torch.float32)


def test_merge_files_writes_loadable_checkpoints(tmp_path):
    p = get_preset("tiny")
    pre = new_dit(p, "original", seed=1)
    tuned = new_dit(p, "sla", seed=1)
    tuned.load_state_dict(pre.state_dict(), strict=False)  # pretrained + a proj_l
    with torch.no_grad():
        tuned.blocks[0].ffn[0].weight.add_(1.0)
        tuned.blocks[0].self_attn.attn_op.local_attn.proj_l.bias.fill_(0.5)
    base = new_dit(p, "original", seed=2)
    files = [export_dit(m, tmp_path / f"{n}.safetensors") for n, m in (("base", base), ("tuned", tuned), ("pre", pre))]
    out = merge_files(*map(str, files), str(tmp_path / "merged.safetensors"))
    merged = loading.load_dit(out, p.dit, attention="sla", dtype=torch.float32)
    torch.testing.assert_close(merged.blocks[0].ffn[0].weight, base.blocks[0].ffn[0].weight + 1.0)
    torch.testing.assert_close(merged.blocks[1].ffn[0].weight, base.blocks[1].ffn[0].weight)
    assert torch.all(merged.blocks[0].self_attn.attn_op.local_attn.proj_l.bias == 0.5)
    outq = merge_files(*map(str, files), str(tmp_path / "merged-quant.safetensors"), quant=True)
    loading.load_dit(outq, p.dit, attention="sla", dtype=torch.float32)


def test_exported_vae_and_text_encoder_reload(tmp_path):
    p = get_preset("tiny")
    vae, enc = new_vae(p, 1).eval(), new_text_encoder(p, 1).eval()
    v2 = loading.load_vae(save_safetensors(vae.state_dict(), tmp_path / "vae.safetensors"), p.vae)
    e2 = loading.load_text_encoder(save_safetensors(enc.state_dict(), tmp_path / "t5.safetensors"), p.text,
                                   dtype=torch.float32)
    z = torch.randn(1, 16, 2, 4, 4)
    ids = torch.randint(3, 200, (1, 16))
    with torch.no_grad():
        torch.testing.assert_close(v2.decode(z), vae.decode(z))
        torch.testing.assert_close(e2(ids, torch.ones_like(ids)), enc(ids, torch.ones_like(ids)))


def test_training_only_presets_share_tiny_vae_and_text_and_merge_quant(tmp_path):
    from engine.train.common import preset

    tiny = get_preset("tiny")
    for name, dim, layers in (("tiny-w256", 256, 4), ("tiny-w192d6", 192, 6), ("tiny-w128d4", 128, 4)):
        p = preset(name)
        assert (p.dit.dim, p.dit.num_layers, p.vae, p.text) == (dim, layers, tiny.vae, tiny.text)
    p = preset("tiny-w256")
    files = [export_dit(new_dit(p, "sla", seed=s), tmp_path / f"{s}.safetensors") for s in (1, 2, 3)]
    out = merge_files(*map(str, files), str(tmp_path / "merged-quant.safetensors"), model="tiny-w256", quant=True)
    m = loading.load_dit(out, p.dit, attention="sla", dtype=torch.float32)
    assert any("int8" in n for n in m.load_notes) and m.blocks[0].self_attn.q.out_features == 256
    from engine.errors import CheckpointError

    with pytest.raises(CheckpointError, match="dim 192"):  # the tiny preset does not take this file
        loading.load_dit(out, tiny.dit, attention="sla", dtype=torch.float32)


def test_install_float16_halves_the_files_and_reloads(tmp_path):
    """``install --dtype float16``: float tensors stored in float16 (int8 scales stay float32), and
    the shipped-model loaders read the files back into the float32 engine with float16 rounding."""
    from pathlib import Path

    from safetensors.torch import load_file

    from engine.train.cli import ASSET_FILES, main

    shipped = Path(loading.__file__).resolve().parent / "assets"
    run, assets = tmp_path / "run", tmp_path / "full"  # assets: the run's files in float32
    run.mkdir()
    assets.mkdir()
    for src, dst in ASSET_FILES.items():  # the shipped files, in float32, under their run names
        if not (shipped / dst).exists():  # the benchmark's teacher is not shipped
            continue
        if src.endswith(".safetensors"):
            sd = {k: t.float() if t.is_floating_point() else t for k, t in load_file(str(shipped / dst)).items()}
            save_safetensors(sd, run / src)
            save_safetensors(sd, assets / dst)
        else:
            (run / src).write_bytes((shipped / dst).read_bytes())
    (run / "teacher.safetensors").write_bytes((run / "student-sla0.safetensors").read_bytes())  # a stand-in
    (run / "guidance.json").write_text('{"guidance": 3.5}')
    out = tmp_path / "assets"
    assert main(["install", str(run), "--dtype", "float16", "--no-teacher", "--assets", str(out)]) == 0
    assert not (out / "bench").exists()
    for dst in ("tiny_dit.safetensors", "tiny_dit-sla-quant.safetensors", "tiny_vae.safetensors"):
        half, full = load_file(str(out / dst)), load_file(str(assets / dst))
        assert half.keys() == full.keys()
        for k, t in full.items():
            if k.endswith(".scale") or not t.is_floating_point():
                assert torch.equal(half[k], t), k
            else:
                assert half[k].dtype == torch.float16 and torch.equal(half[k], t.half()), k
    assert (out / "tiny_dit.safetensors").stat().st_size < 0.55 * (assets / "tiny_dit.safetensors").stat().st_size
    p = get_preset("tiny")
    a = loading.load_dit(assets / "tiny_dit.safetensors", p.dit, attention="original", dtype=torch.float32)
    b = loading.load_dit(out / "tiny_dit.safetensors", p.dit, attention="original", dtype=torch.float32)
    x, t, ctx = _dit_inputs(p.dit)
    with torch.no_grad():
        ya, yb = a(x, t, ctx), b(x, t, ctx)
    assert ((ya - yb).norm() / ya.norm()).item() < 5e-3
    # a run folder missing its files is refused with the reason
    assert main(["install", str(tmp_path / "nothing"), "--assets", str(out)]) == 2
    # with the teacher, then without it: the earlier install's teacher does not stay behind
    (run / "teacher.safetensors").unlink()
    assert main(["install", str(run), "--no-teacher", "--assets", str(out)]) == 0  # needs no teacher
    (run / "teacher.safetensors").write_bytes((run / "student-sla0.safetensors").read_bytes())
    assert main(["install", str(run), "--assets", str(out)]) == 0
    assert (out / "bench/tiny_teacher.safetensors").is_file()
    assert main(["install", str(run), "--no-teacher", "--assets", str(out)]) == 0
    assert not (out / "bench/tiny_teacher.safetensors").exists() and not (out / "bench/tiny_guidance.json").exists()
