"""Every sparsity objective on the real GloVe sample: the behaviour each promises, and the whole
CLI (train, encode, inspect, neighbors, evaluate) for each."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import sparsecode as sc
from sparsecode.cli import app
from sparsecode.config import SPARSITIES
from sparsecode.model import SparseAutoencoder
from sparsecode.modelfile import META, STATE_SHAPES

from .conftest import SAMPLE

runner = CliRunner()


def train_codes(sample, **settings) -> tuple[sc.TrainResult, torch.Tensor]:
    """Train on the whole sample; return the result and the dense (N, H) codes of every word."""
    result = sc.train(sample, sc.TrainConfig(device="cpu", seed=0, **settings))
    model = result.model
    with torch.no_grad():
        enc = model.encode(torch.from_numpy(sample.vectors), result.config.resolved("encode_k"))
    z = torch.zeros(len(sample), model.n_hidden).scatter(1, enc.indices, enc.acts)
    return result, z


def test_kl_keeps_every_unit_near_its_target_rate(sample):
    rho = 0.05
    result, z = train_codes(sample, sparsity="kl", rho=rho, hidden=300, epochs=30)
    fires = (z > 0).double().mean(0)
    in_band = ((fires >= rho / 3) & (fires <= 3 * rho)).double().mean()
    assert in_band >= 0.9, f"only {in_band:.1%} of units fire on between rho/3 and 3 rho of the words"
    assert fires.max() <= 0.5, f"a unit fires on {fires.max():.1%} of the words (the one-unit collapse)"
    assert result.summary["dead_fraction"] == 0 and result.summary["zero_rows_fraction"] == 0


def test_l1_sparser_as_the_coefficient_rises(sample):
    l0 = [train_codes(sample, sparsity="l1", l1_coef=c, hidden=300, epochs=20)[0].summary["mean_l0"]
          for c in (0.03, 0.1, 0.3)]
    assert l0[0] > 1.2 * l0[1] > 1.44 * l0[2], l0


def test_spine_codes_are_mostly_zeros_and_units_not_always_on(sample):
    result, z = train_codes(sample, sparsity="spine", rho=0.15, hidden=300, epochs=30)
    assert result.config.resolved("noise") == 0.2  # SPINE is a denoising autoencoder by default
    assert (z == 0).double().mean() >= 0.8
    assert float(z.max()) <= 1.0 and float(z.min()) >= 0.0  # capped ReLU
    fires = (z > 0).double().mean(0)
    assert fires.max() < 0.9 and (fires > 0.5).double().mean() <= 0.01


def test_batchtopk_encodes_about_k_per_word_with_its_threshold(sample):
    k = 16
    result, z = train_codes(sample, sparsity="batchtopk", k=k, hidden=300, epochs=20)
    assert result.config.resolved("encode_k") is None  # the learned threshold, not a per-word top-k
    threshold = float(result.model.threshold)
    assert threshold > 0 and float(z[z > 0].min()) > threshold
    mean_l0 = float((z > 0).double().sum(1).mean())
    assert abs(mean_l0 - k) <= 0.2 * k, mean_l0
    # Words may use more or fewer than k units: that is the point of BatchTopK.
    per_word = (z > 0).sum(1)
    assert per_word.max() > k and per_word.min() < k


def test_noise_is_for_training_only(sample):
    result = sc.train(sample, sc.TrainConfig(hidden=100, k=8, epochs=2, noise=0.5, device="cpu"))
    clean = sc.train(sample, sc.TrainConfig(hidden=100, k=8, epochs=2, noise=0.0, device="cpu"))
    assert not torch.equal(result.model.W_enc, clean.model.W_enc)  # the noise was used in training
    model = result.model
    x = torch.from_numpy(sample.vectors)
    with torch.no_grad():
        enc = model.encode(x, 8)
        # Encoding is the plain, noiseless map from the weights.
        pre = (model.normalise(x) - model.b_dec) @ model.W_enc + model.b_enc
        top = (pre + model.select_bias).topk(8, dim=1).indices  # the selection bias only chooses units
        z = torch.zeros(len(x), 100).scatter(1, enc.indices, enc.acts)
        torch.testing.assert_close(z, torch.zeros(len(x), 100).scatter(1, top, pre.gather(1, top).clamp_min(0)))
        # And so are the final statistics: their FVU is that of these codes.
        x_hat = model.decode(enc.acts, enc.indices).double()
        x = model.reconstruction_target(x).double()  # the rows a (cosine) model reconstructs
        fvu = (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    assert result.summary["fvu"] == pytest.approx(float(fvu), rel=1e-5)


def test_batchtopk_encode_k_caps_above_the_threshold(sample):
    result, _ = train_codes(sample, sparsity="batchtopk", k=8, hidden=100, epochs=3)
    model = result.model
    with torch.no_grad():
        capped = model.encode(torch.from_numpy(sample.vectors), 4)
    kept = capped.acts[capped.acts > 0]
    assert capped.acts.shape[1] == 4 and float(kept.min()) > float(model.threshold)


def test_deeper_decoders_cannot_undo_the_codes_scale(sample):
    """relu(c y) = c relu(y): a decoder layer scaled by 1/c would undo codes shrunk by c, and an L1, KL or
    SPINE penalty would be dodged. The unit-norm projection that follows every step takes that away."""
    model = SparseAutoencoder(50, 100, sparsity="l1", encoder_layers=[40])
    x = torch.from_numpy(sample.vectors[:200])
    model.initialise(x, generator=torch.Generator().manual_seed(0))
    c = 0.01
    with torch.no_grad():
        before = model(x)
        model.W_enc.mul_(c)
        model.b_enc.mul_(c)
        model.b_mid.mul_(c)
        model.dec_layers[0].weight.div_(c)
        torch.testing.assert_close(model(x), before, atol=1e-4, rtol=1e-4)  # the dodge, before projection
        model.normalise_decoder()  # what training does after every step
        for layer in model.dec_layers:
            torch.testing.assert_close(layer.weight.norm(dim=0), torch.ones(layer.weight.shape[1]))
        shrunk = model.normalise(model(x)) - model.b_dec
        assert float(shrunk.norm(dim=1).mean()) < 0.05 * float((model.normalise(before) - model.b_dec).norm(dim=1).mean())


def test_deeper_encoder_trains_saves_and_reloads(tmp_path, sample):
    out = tmp_path / "deep"
    sc.train(sample, sc.TrainConfig(hidden=100, k=8, epochs=3, encoder_layers=[80, 40], device="cpu"), out_dir=out)
    state = torch.load(out / "model.pt", weights_only=True)
    extra = {"enc_layers.0.weight": (80, 50), "enc_layers.0.bias": (80,), "enc_layers.1.weight": (40, 80),
             "enc_layers.1.bias": (40,), "b_mid": (40,), "dec_layers.0.weight": (80, 40), "dec_layers.0.bias": (80,),
             "dec_layers.1.weight": (50, 80), "select_bias": (100,)}
    assert set(state) == set(STATE_SHAPES) | set(extra) | set(META)
    assert {name: tuple(state[name].shape) for name in extra} == extra
    assert state["W_enc"].shape == (40, 100) and state["W_dec"].shape == (100, 40)
    torch.testing.assert_close(state["W_dec"].norm(dim=1), torch.ones(100), atol=1e-5, rtol=0)
    # The documented forward pass, written out from the stored tensors, equals the model's.
    x = torch.from_numpy(sample.vectors[:300])
    model, _ = sc.load_run(out)
    with torch.no_grad():
        enc = model.encode(x, 8)
        z = torch.zeros(300, 100).scatter(1, enc.indices, enc.acts)
        offset = x - state["input_mean"]  # topk's cosine geometry: every offset at length sqrt(D)
        xn = offset * (offset.shape[1] ** 0.5 / offset.norm(dim=1, keepdim=True))
        h = torch.relu((xn - state["b_dec"]) @ state["enc_layers.0.weight"].t() + state["enc_layers.0.bias"])
        h = torch.relu(h @ state["enc_layers.1.weight"].t() + state["enc_layers.1.bias"])
        pre = h @ state["W_enc"] + state["b_enc"]
        top = (pre + state["select_bias"]).topk(8, dim=1).indices
        ref = torch.zeros(300, 100).scatter(1, top, pre.gather(1, top).clamp_min(0))
        y = torch.relu(z @ state["W_dec"] + state["b_mid"])
        y = torch.relu(y @ state["dec_layers.0.weight"].t() + state["dec_layers.0.bias"])
        x_hat = (y @ state["dec_layers.1.weight"].t() + state["b_dec"]) * state["input_scale"] + state["input_mean"]
        torch.testing.assert_close(z, ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(x, 8), x_hat, atol=1e-5, rtol=1e-5)
    with pytest.raises(sc.SparsecodeError, match="single-layer model"):
        sc.encode(out, SAMPLE, tmp_path / "omp.h5", method="omp", device="cpu")
    with pytest.raises(sc.SparsecodeError, match=r"^method omp needs the single-layer model"):  # no file to name
        sc.encode(model, SAMPLE, method="omp", device="cpu")


def test_settings_that_do_not_apply_are_refused():
    for settings, setting, needle in (
        (dict(sparsity="l1", rho=0.1), "rho", "rho applies to sparsity kl or spine, not l1"),
        (dict(sparsity="kl", k=16), "k", "k applies to sparsity topk or batchtopk, not kl; cap the codes at encode time"),
        (dict(sparsity="l1", beta=1.0), "beta", "beta applies to sparsity kl, not l1"),
        (dict(sparsity="kl", l1_coef=0.2), "l1_coef", "l1_coef applies to sparsity l1, not kl"),
        (dict(sparsity="spine", homeostasis=1e-3), "homeostasis", "homeostasis applies to sparsity topk or batchtopk, not spine"),
        (dict(sparsity="kl", aux_coef=0.03), "aux_coef", "aux_coef (AuxK) applies to sparsity topk or batchtopk"),
        (dict(sparsity="kl", rho=1.5), "rho", "rho must be between 0 and 1"),
        (dict(sparsity="nope"), "sparsity", "sparsity must be one of topk, batchtopk, kl, l1, spine"),
        (dict(encoder_layers=[80, 0]), "encoder_layers", "encoder_layers must be positive widths"),
        (dict(encoder_layers=[80], aux_coef=0.03), "aux_coef", "needs the single-layer model"),
        (dict(geometry="spherical"), "geometry", "geometry must be one of cosine, euclidean"),
        (dict(rank_power=-0.5), "rank_power", "rank_power must be 0 or more"),
    ):
        with pytest.raises(sc.SparsecodeError, match=needle.replace("(", r"\(").replace(")", r"\)")) as exc:
            sc.TrainConfig(**settings).validate()
        assert exc.value.setting == setting


@pytest.mark.parametrize("sparsity,layers", [(s, "") for s in SPARSITIES] + [("topk", "60"), ("spine", "60")])
def test_every_objective_through_the_cli(tmp_path, sparsity, layers):
    run_dir, codes = tmp_path / "run", tmp_path / "codes.h5"
    k = ["--k", "8"] if sparsity in ("topk", "batchtopk") else []
    res = runner.invoke(app, ["train", str(SAMPLE), "--out", str(run_dir), "--sparsity", sparsity, "--hidden", "150",
                              *k, "--epochs", "3", "--encoder-layers", layers, "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output
    config = json.loads((run_dir / "config.json").read_text())
    assert config["sparsity"] == sparsity
    res = runner.invoke(app, ["encode", str(run_dir), str(SAMPLE), "--out", str(codes), "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output
    loaded = sc.load_codes(codes)
    assert loaded.attrs["sparsity"] == sparsity
    assert np.all(loaded.data != 0)  # exact zeros are left out of the CSR arrays
    if sparsity == "topk":
        assert loaded.attrs["encode_k"] == 8 and np.diff(loaded.indptr).max() <= 8
    else:
        assert "encode_k" not in loaded.attrs and np.diff(loaded.indptr).max() > 8  # the activation's own zeros
    if sparsity == "spine":
        assert loaded.data.max() <= 1.0
    res = runner.invoke(app, ["inspect", str(codes), "--word", "france", "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["neighbors", str(codes), "france", "--json"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)["france"]) == 10
    res = runner.invoke(app, ["evaluate", str(codes), "--model", str(run_dir), "--embeddings", str(SAMPLE), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    # The stored codes reconstruct as the run's own final statistics say.
    summary = json.loads((run_dir / "summary.json").read_text())
    assert report["reconstruction"]["fvu"] == pytest.approx(summary["fvu"], rel=1e-4)


def test_the_selection_bias_evens_out_unit_use(sample):
    """The default selection bias spreads the words over the units more evenly than the same training
    without it (measured with the effective units and the busiest unit's share)."""
    base = dict(hidden=200, k=16, epochs=3, device="cpu", init="random")
    plain = sc.train(sample, sc.TrainConfig(**base, balance=0.0)).summary
    balanced = sc.train(sample, sc.TrainConfig(**base)).summary
    assert balanced["effective_units"] > plain["effective_units"]
    assert balanced["busiest_rate"] < plain["busiest_rate"]
    assert balanced["starved_fraction"] <= plain["starved_fraction"]
