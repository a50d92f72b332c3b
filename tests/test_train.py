"""The training loop: schedules, determinism, the run directory and its refusal to overwrite."""

from __future__ import annotations

import json

import pytest
import torch

import sparsecode as sc
from sparsecode.training import Trainer, k_at, lr_factor, noise_seed

from .conftest import SMALL, host_reads_of, sample_subset, stop_at


def test_k_annealing_schedule():
    cfg = sc.TrainConfig(k=32, hidden=1000, k_anneal_from=200, k_anneal_frac=0.3)
    total = 1000
    assert k_at(0, total, cfg) == 200
    assert k_at(150, total, cfg) == 116  # halfway through the 300 annealing steps
    assert k_at(299, total, cfg) == 33
    assert k_at(300, total, cfg) == 32 and k_at(999, total, cfg) == 32
    off = sc.TrainConfig(k=32)  # no annealing unless asked for
    assert off.resolved("k_anneal_from") == 32 and k_at(0, total, off) == 32


def test_learning_rate_warmup_then_cosine_decay():
    cfg = sc.TrainConfig(warmup_frac=0.1, lr_final_ratio=0.1)
    total = 101
    assert lr_factor(0, total, cfg) == pytest.approx(1 / 10)
    assert lr_factor(9, total, cfg) == pytest.approx(1.0)
    assert lr_factor(10, total, cfg) == pytest.approx(1.0)
    assert lr_factor(55, total, cfg) == pytest.approx(0.55)  # cosine midpoint between 1 and 0.1
    assert lr_factor(100, total, cfg) == pytest.approx(0.1)


def test_config_validation_names_the_setting():
    with pytest.raises(sc.SparsecodeError, match="^k 300 is larger than the hidden size 200; lower k or raise hidden$"):
        sc.TrainConfig(hidden=200, k=300).validate()
    with pytest.raises(sc.SparsecodeError, match="^k must be at least 1"):
        sc.TrainConfig(k=0).validate()
    with pytest.raises(sc.SparsecodeError, match="^epochs must be at least 1"):
        sc.TrainConfig(epochs=0).validate()
    with pytest.raises(sc.SparsecodeError, match="^batch_size must be at least 1"):
        sc.TrainConfig(batch_size=-4).validate()


def test_same_seed_same_model_on_cpu(sample):
    cfg = sc.TrainConfig(**{**SMALL, "epochs": 1})
    a = sc.train(sample, cfg).model.weights()
    b = sc.train(sample, cfg).model.weights()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    c = sc.train(sample, sc.TrainConfig(**{**SMALL, "epochs": 1, "seed": 1})).model.weights()
    assert not torch.equal(a["W_dec"], c["W_dec"])


@pytest.mark.parametrize("settings", [dict(noise=0.3, holdout=0.1), dict(init="kmeans", aux_coef=1 / 32),
                                      dict(sparsity="spine", k=None), dict(encoder_layers=[40], init="random")],
                         ids=["noise", "kmeans", "spine", "layers"])
def test_training_leaves_the_global_random_state_alone(sample, settings):
    """Every draw comes from the run's own generators: torch's global generator is in the same state
    after sc.train as before, and what the global generator holds does not change the model."""
    cfg = sc.TrainConfig(**{**SMALL, "epochs": 1, **settings})
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    a = sc.train(sample, cfg).model.weights()
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(99)
    torch.rand(7)
    b = sc.train(sample, cfg).model.weights()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_encoding_and_reading_runs_do_not_load_the_training_loop():
    """sparsecode.encoding and the run directory's readers stand without the Trainer, DDP and the
    optimizer: importing them in a fresh interpreter loads none of those modules."""
    import subprocess
    import sys

    code = ("import sys, sparsecode.encoding, sparsecode.evaluate, sparsecode.html_report, sparsecode.rundir\n"
            "print(' '.join(m for m in ('sparsecode.training', 'sparsecode.distributed', 'sparsecode.optim', "
            "'sparsecode.estimator') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_run_directory_contents(run_dir):
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "metrics.jsonl", "model.pt", "summary.json"]
    config = json.loads((run_dir / "config.json").read_text())
    for key, value in SMALL.items():
        assert config[key] == value
    assert config["n_words"] == 5000 and config["d_in"] == 50 and config["aux_k"] == 0  # AuxK is off by default
    assert config["device"] == "cpu" and config["k_encode"] == 8
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2, 3]
    for m in lines:
        assert set(m) >= {"loss", "fvu", "mean_l0", "dead_fraction", "zero_rows_fraction", "seconds"}
        assert 0 <= m["dead_fraction"] <= 1 and 0 <= m["zero_rows_fraction"] <= 1
    assert lines[-1]["mean_l0"] <= 8  # annealing has finished by the last epoch
    assert lines[-1]["fvu"] < lines[0]["fvu"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0 < summary["fvu"] < 1 and summary["k"] == 8


def test_refuses_to_overwrite_without_force(tmp_path, sample):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.pt").write_text("precious")
    (out / "notes.txt").write_text("mine")
    cfg = sc.TrainConfig(**{**SMALL, "epochs": 1})
    with pytest.raises(sc.SparsecodeError, match="already exists; pass force=True"):
        sc.train(sample, cfg, out_dir=out)
    assert (out / "model.pt").read_text() == "precious"
    sc.train(sample, cfg, out_dir=out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.jsonl", "model.pt", "notes.txt", "summary.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary left beside it


def test_interrupted_training_keeps_only_a_checkpoint(tmp_path, sample):
    interrupt = stop_at(30)
    with pytest.raises(sc.errors.TrainingInterrupted, match="interrupted at step 30 of 60; .* --resume"):
        sc.train(sample, sc.TrainConfig(**SMALL), out_dir=tmp_path / "run", progress=interrupt)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["checkpoint.pt"]
    with pytest.raises(sc.SparsecodeError, match="training has not finished; continue it"):
        sc.load_run(tmp_path / "run")
    with pytest.raises(sc.SparsecodeError, match=r"run: holds a checkpoint from step 30: rerun with resume=True to "
                                                 r"continue, or force=True to start again$"):
        sc.train(sample, sc.TrainConfig(**SMALL), out_dir=tmp_path / "run")


def test_resume_gives_identical_weights(tmp_path, sample, run_dir):
    cfg = sc.TrainConfig(**{**SMALL, "checkpoint_every": 7})
    stops = iter([13, 41])

    out = tmp_path / "run"
    limit = next(stops)
    with pytest.raises(sc.errors.TrainingInterrupted):
        sc.train(sample, cfg, out_dir=out, progress=stop_at(limit))
    with pytest.raises(sc.errors.TrainingInterrupted):
        sc.train(sample, cfg, out_dir=out, resume=True, progress=stop_at(next(stops)))
    sc.train(sample, cfg, out_dir=out, resume=True)
    a = torch.load(out / "model.pt", weights_only=True)
    b = torch.load(run_dir / "model.pt", weights_only=True)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert (out / "metrics.jsonl").read_text().count("\n") == 3
    assert not (out / "checkpoint.pt").exists()


@pytest.mark.parametrize("settings", [dict(sparsity="batchtopk", noise=0.3), dict(sparsity="spine")])
def test_resume_is_exact_with_noise_and_the_batchtopk_threshold(tmp_path, sample, settings):
    cfg = sc.TrainConfig(hidden=100, epochs=2, seed=0, device="cpu", checkpoint_every=5, **settings)
    out, ref = tmp_path / "resumed", tmp_path / "straight"
    with pytest.raises(sc.errors.TrainingInterrupted):
        sc.train(sample, cfg, out_dir=out, progress=stop_at(11))
    sc.train(sample, cfg, out_dir=out, resume=True)
    sc.train(sample, cfg, out_dir=ref)
    a, b = (torch.load(d / "model.pt", weights_only=True) for d in (out, ref))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _tensors(value)


def test_a_checkpoint_from_another_device_resumes_exactly(tmp_path, sample):
    """A checkpoint holds CPU tensors and no generator state of a device. One written on a GPU by an
    earlier version (device "cuda", the 16-byte state of a CUDA noise generator, which a CPU generator
    refuses) resumes on the CPU to the model of an uninterrupted run."""
    cfg = sc.TrainConfig(hidden=100, epochs=2, seed=0, device="cpu", checkpoint_every=5, sparsity="spine")
    out, ref = tmp_path / "resumed", tmp_path / "straight"
    with pytest.raises(sc.errors.TrainingInterrupted):
        sc.train(sample, cfg, out_dir=out, progress=stop_at(11))
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert "noise_generator" not in state
    assert all(t.device.type == "cpu" for t in _tensors(state))
    cuda_state = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state: seed and offset
    with pytest.raises(RuntimeError):
        torch.Generator().set_state(cuda_state)  # what resuming such a checkpoint on the CPU used to do
    state["noise_generator"] = cuda_state
    state["config"]["device"] = "cuda"
    torch.save(state, out / "checkpoint.pt")
    sc.train(sample, cfg, out_dir=out, resume=True)
    sc.train(sample, cfg, out_dir=ref)
    a, b = (torch.load(d / "model.pt", weights_only=True) for d in (out, ref))
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_training_noise_depends_on_the_seed_and_step_only(sample):
    """Each step's noise comes from a generator seeded by (seed, step): reproducible, new every step."""
    cfg = sc.TrainConfig(hidden=100, epochs=1, batch_size=64, noise=0.5, device="cpu")
    a, b = Trainer(sample, cfg), Trainer(sample, cfg)
    x = a.source.batch(0)
    first = a._noise(x)
    a.train_step()
    b.train_step()
    assert torch.equal(first, Trainer(sample, cfg)._noise(x))
    second = a._noise(a.source.batch(1))
    assert first.shape == (64, sample.vectors.shape[1]) and not torch.allclose(first, second)
    assert torch.equal(second, b._noise(b.source.batch(1)))
    assert abs(float(first.mean())) < 0.05 and abs(float(first.std()) - 1) < 0.05
    assert len({noise_seed(0, t) for t in range(1000)} | {noise_seed(1, t) for t in range(1000)}) == 2000


def test_a_format_4_checkpoint_resumes_exactly_and_an_older_one_is_refused(tmp_path, sample):
    """Format 4 held the global torch RNG state, which nothing drew from: such a checkpoint resumes to
    the model of an uninterrupted run. Format 3 is refused in one line."""
    cfg = sc.TrainConfig(hidden=100, epochs=2, seed=0, device="cpu", checkpoint_every=5)
    out, ref = tmp_path / "resumed", tmp_path / "straight"
    with pytest.raises(sc.errors.TrainingInterrupted):
        sc.train(sample, cfg, out_dir=out, progress=stop_at(11))
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["format"] == "sparsecode-checkpoint-5" and "torch_rng" not in state
    torch.save({**state, "format": "sparsecode-checkpoint-4", "torch_rng": torch.get_rng_state()}, out / "checkpoint.pt")
    sc.train(sample, cfg, out_dir=out, resume=True)
    sc.train(sample, cfg, out_dir=ref)
    a, b = (torch.load(d / "model.pt", weights_only=True) for d in (out, ref))
    for name in a:
        assert torch.equal(a[name], b[name]), name
    old = tmp_path / "old"
    with pytest.raises(sc.errors.TrainingInterrupted):
        sc.train(sample, cfg, out_dir=old, progress=stop_at(11))
    torch.save({**torch.load(old / "checkpoint.pt", weights_only=True), "format": "sparsecode-checkpoint-3"},
               old / "checkpoint.pt")
    with pytest.raises(sc.SparsecodeError, match="not a checkpoint of this version of sparsecode; start again with"):
        sc.train(sample, cfg, out_dir=old, resume=True)


def test_resume_refuses_other_settings_and_finished_runs(tmp_path, sample, run_dir):
    interrupt = stop_at(0)

    out = tmp_path / "run"
    with pytest.raises(sc.errors.TrainingInterrupted):
        sc.train(sample, sc.TrainConfig(**SMALL), out_dir=out, progress=interrupt)
    with pytest.raises(sc.SparsecodeError, match=r"other settings \(k: 8 -> 9\)"):
        sc.train(sample, sc.TrainConfig(**{**SMALL, "k": 9}), out_dir=out, resume=True)
    other = sc.Embeddings(sample.words, sample.vectors * 2, "other.h5")
    with pytest.raises(sc.SparsecodeError, match="made on other data"):
        sc.train(other, sc.TrainConfig(**SMALL), out_dir=out, resume=True)
    with pytest.raises(sc.SparsecodeError, match="this run has finished; there is nothing to resume"):
        sc.train(sample, sc.TrainConfig(**SMALL), out_dir=run_dir, resume=True)


def _poison_reconstruction(monkeypatch, bad) -> dict:
    """Make the training loop's reconstruction error NaN on the calls ``n`` (from 1) where ``bad(n)``;
    returns the call counter ``{"n": ...}``."""
    import sys

    train_mod = sys.modules["sparsecode.training"]
    real = train_mod.reconstruction
    calls = {"n": 0}

    def poisoned(x, x_hat, mean):
        calls["n"] += 1
        rec = real(x, x_hat, mean)
        return rec._replace(sse=rec.sse * float("nan")) if bad(calls["n"]) else rec

    monkeypatch.setattr(train_mod, "reconstruction", poisoned)
    return calls


def test_non_finite_loss_goes_back_and_halves_the_lr_once(sample, monkeypatch):
    calls = _poison_reconstruction(monkeypatch, lambda n: n in bad_calls)
    bad_calls = {25}
    with pytest.warns(UserWarning, match=r"non-finite loss or weights by step 2\d: went back to step 2\d and halved the learning rate"):
        result = sc.train(sample, sc.TrainConfig(**SMALL))
    assert all(torch.isfinite(t).all() for t in result.model.weights().values())
    assert len(result.metrics) == 3

    calls["n"] = 0
    bad_calls = {25, 45}
    with pytest.warns(UserWarning), pytest.raises(sc.SparsecodeError, match="training diverged twice"):
        sc.train(sample, sc.TrainConfig(**SMALL))


@pytest.mark.parametrize("geometry", ["euclidean", "cosine"])
def test_code_statistics_match_a_brute_force_count(sample, geometry):
    """Final statistics (dead units, zero rows, L0, FVU) equal a direct dense computation; the FVU
    of a cosine model is that of the rows it reconstructs, each at the typical length from the mean."""
    result = sc.train(sample, sc.TrainConfig(**{**SMALL, "epochs": 1, "geometry": geometry}))
    model = result.model
    x = torch.from_numpy(sample.vectors)
    target = x if geometry == "euclidean" else (model.input_mean + (x - model.input_mean) * (
        model.input_scale * 50 ** 0.5 / (x - model.input_mean).norm(dim=1, keepdim=True))).detach()
    assert result.summary["fvu"] == pytest.approx(sc.evaluate.code_statistics(model, x, k=8)["fvu"], rel=1e-5)
    with torch.no_grad():
        model.W_enc[:, :3] = 0.0
        model.b_enc[:3] = -100.0  # units 0-2 can never be selected: dead
    x = torch.from_numpy(sample.vectors)
    stats = sc.evaluate.code_statistics(model, x, k=8, batch_size=777)
    with torch.no_grad():
        pre = (model.normalise(x) - model.b_dec) @ model.W_enc + model.b_enc
        idx = (pre + model.select_bias).topk(8, dim=1).indices
        z = torch.zeros_like(pre).scatter(1, idx, pre.gather(1, idx).clamp_min(0))
        x_hat = model.denormalise(z @ model.W_dec + model.b_dec)
    usage = (z > 0).sum(0)
    assert stats["dead_fraction"] == pytest.approx((usage == 0).double().mean().item())
    assert stats["dead_fraction"] >= 3 / 200
    assert stats["always_on_fraction"] == pytest.approx((usage > 2500).double().mean().item())
    assert stats["zero_rows_fraction"] == pytest.approx(((z > 0).sum(1) == 0).double().mean().item())
    assert stats["mean_l0"] == pytest.approx((z > 0).sum(1).double().mean().item())
    fvu = ((target - x_hat).double() ** 2).sum() / ((target.double() - target.double().mean(0)) ** 2).sum()
    assert stats["fvu"] == pytest.approx(fvu.item(), rel=1e-4)


def test_homeostasis_balances_unit_frequencies(sample):
    """The encoder-bias nudge spreads the words over the units more evenly than training without it."""
    freqs = {}
    for rate in (0.0, 1e-3):
        model = sc.train(sample, sc.TrainConfig(**{**SMALL, "homeostasis": rate, "balance": 0.0})).model
        with torch.no_grad():
            enc = model.encode(torch.from_numpy(sample.vectors), 8)
        used = torch.zeros(200).index_add_(0, enc.indices.reshape(-1), (enc.acts > 0).reshape(-1).float())
        freqs[rate] = used / 5000
    assert freqs[1e-3].std() < freqs[0.0].std()
    assert freqs[1e-3].max() < freqs[0.0].max()
    with pytest.raises(sc.SparsecodeError, match="^homeostasis must be 0 or more"):
        sc.TrainConfig(homeostasis=-1).validate()


def test_auxk_can_be_turned_on(tmp_path, sample):
    result = sc.train(sample, sc.TrainConfig(**{**SMALL, "epochs": 1, "aux_coef": 1 / 32}), out_dir=tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["aux_k"] == 25 and config["aux_coef"] == 1 / 32
    assert all(torch.isfinite(t).all() for t in result.model.weights().values())


def test_no_checkpoint_ever_holds_a_diverged_state(tmp_path, sample, monkeypatch):
    """Checkpoints fall between report points too; each one is checked for a finite loss first."""
    from sparsecode.rundir import CHECKPOINT_FORMAT

    _poison_reconstruction(monkeypatch, lambda n: n >= 25)
    saved = []  # (step, finite) of every checkpoint written: a kill -9 may come after any of them
    real_save = torch.save

    def recording_save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
            saved.append((obj["position"]["step"], all(torch.isfinite(t).all() for t in obj["model"].values())))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", recording_save)
    cfg = sc.TrainConfig(**{**SMALL, "batch_size": 32, "checkpoint_every": 1})  # reports every 7 steps
    with pytest.warns(UserWarning, match="non-finite loss"), pytest.raises(sc.SparsecodeError, match="diverged twice"):
        sc.train(sample, cfg, out_dir=tmp_path / "run")
    assert len(saved) > 20 and all(finite for _, finite in saved), saved
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["position"]["step"] < 25


SYNC_FREE = [dict(sparsity="topk", aux_coef=1 / 32), dict(sparsity="batchtopk", aux_coef=1 / 32),
             dict(sparsity="kl"), dict(sparsity="spine")]


@pytest.mark.parametrize("settings", SYNC_FREE, ids=lambda s: s["sparsity"])
def test_a_step_reads_nothing_back_on_the_cuda_code_path(sample, cuda_code_paths, settings):
    """What set_sync_debug_mode("error") checks on a GPU, checked on the CPU at the operators the step
    dispatches: three warmed-up steps (AuxK with dead units; SPINE's noise) read nothing back."""
    cfg = sc.TrainConfig(hidden=4000, batch_size=256, epochs=1, dead_window=0.01, device="cpu", **settings)
    trainer = Trainer(sample, cfg)
    for _ in range(3):
        trainer.train_step()
    assert not host_reads_of(lambda: [trainer.train_step() for _ in range(3)])
    if cfg.aux_coef > 0:
        assert trainer.dead.any()  # AuxK had dead units to work on


def test_the_audit_sees_a_host_read(cuda_code_paths):
    from sparsecode import topk

    flat = torch.tensor([1, 2, 2])
    assert host_reads_of(lambda: torch.bincount(flat, minlength=4)) == ["aten.bincount.default"]
    assert host_reads_of(lambda: bool((flat > 0).all())) == ["aten._local_scalar_dense.default"]
    assert host_reads_of(lambda: flat[flat > 1]) == ["aten.index.Tensor"]
    assert not host_reads_of(lambda: topk.unit_offsets(flat, 4))


def test_an_infinite_gradient_with_a_finite_loss_never_reaches_a_checkpoint(tmp_path, sample, monkeypatch):
    """The loss of a step is computed before its update: an infinite gradient leaves it finite and
    the weights NaN. What a checkpoint saves is checked itself, and recovered from as a NaN loss is."""
    from sparsecode.model import SparseAutoencoder

    real = SparseAutoencoder.remove_parallel_decoder_grad
    calls = {"n": 0}
    poisoned_steps = {11}

    def poisoned(self):
        real(self)
        calls["n"] += 1
        if calls["n"] in poisoned_steps:
            self.W_dec.grad[0, 0] = float("inf")

    monkeypatch.setattr(SparseAutoencoder, "remove_parallel_decoder_grad", poisoned)
    saved = []  # (step, model and Adam moments all finite) of every checkpoint written
    real_save = torch.save

    def recording_save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and "optimizer" in obj:
            moments = [v for st in obj["optimizer"]["state"].values() for v in st.values() if v.is_floating_point()]
            saved.append((obj["position"]["step"], all(torch.isfinite(t).all() for t in [*obj["model"].values(), *moments])))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", recording_save)
    words = sc.Embeddings(*sample_subset(sample, 2000), path="first 2000")
    cfg = sc.TrainConfig(**{**SMALL, "hidden": 50, "epochs": 1, "batch_size": 32, "checkpoint_every": 1})  # 63 steps, reports every 3
    with pytest.warns(UserWarning, match=r"non-finite loss or weights by step 11: went back to step 9 and halved"):
        result = sc.train(words, cfg, out_dir=tmp_path / "run")
    # Every step once, and step 10 twice: step 11's weights were not saved, training went back to 9.
    assert [step for step, _ in saved] == [*range(1, 11), *range(10, 64)]
    assert all(finite for _, finite in saved), [step for step, finite in saved if not finite]
    assert all(torch.isfinite(t).all() for t in result.model.weights().values())

    calls["n"], poisoned_steps = 0, set(range(11, 1000))
    with pytest.warns(UserWarning), pytest.raises(sc.SparsecodeError, match=r"training diverged twice \(non-finite "
                                                                         r"loss or weights by step 10\)"):
        sc.train(words, cfg, out_dir=tmp_path / "run2")
    state = torch.load(tmp_path / "run2" / "checkpoint.pt", weights_only=True)
    assert state["position"]["step"] == 9 and all(torch.isfinite(t).all() for t in state["model"].values())
