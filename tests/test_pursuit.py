"""Pursuit encoding: agreement with a plain float64 OMP, non-negativity, the model.pt contract, the CLI."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

import sparsecode as sc
from sparsecode.evaluate import code_statistics, compare_methods
from sparsecode.pursuit import Dictionary, PursuitCoder, omp

from .conftest import SAMPLE
from .test_cli import one_line_error, run


def reference_omp(y: np.ndarray, atoms: np.ndarray, k: int, nonneg: bool = False) -> tuple[list[int], np.ndarray]:
    """Textbook OMP of one row in float64: pick the atom most correlated with the residual (the
    largest positive correlation if ``nonneg``), refit least squares on the support. Non-negative:
    stop when no correlation is positive or the refit would make a coefficient <= 0.
    Returns the atoms in the order chosen and their coefficients."""
    support: list[int] = []
    coefs = np.zeros(0)
    residual = y.copy()
    for _ in range(k):
        corr = atoms @ residual
        j = int(np.argmax(corr)) if nonneg else int(np.argmax(np.abs(corr)))
        if corr[j] <= 0 if nonneg else corr[j] == 0:
            break
        trial = support + [j]
        fit = np.linalg.lstsq(atoms[trial].T, y, rcond=None)[0]
        if nonneg and np.any(fit <= 0):
            break
        support, coefs = trial, fit
        residual = y - coefs @ atoms[support]
    return support, coefs


def assert_matches_reference(target: torch.Tensor, atoms: torch.Tensor, k: int, nonneg: bool) -> int:
    """OMP in float64 picks the reference's atoms in the reference's order, with its coefficients.
    Returns how many rows stopped before k atoms."""
    got = omp(target.double(), atoms.double(), k, nonneg=nonneg)
    stopped = 0
    for row in range(target.shape[0]):
        support, coefs = reference_omp(target[row].double().numpy(), atoms.double().numpy(), k, nonneg)
        n = len(support)
        stopped += n < k
        assert got.indices[row, :n].tolist() == support, f"row {row}"
        np.testing.assert_allclose(got.acts[row, :n].numpy(), coefs, rtol=1e-9, atol=1e-10)
        assert torch.all(got.acts[row, n:] == 0), f"row {row} has coefficients after stopping"
    return stopped


@pytest.fixture(scope="module")
def model(run_dir) -> sc.SparseAutoencoder:
    return sc.SparseAutoencoder.load(run_dir / "model.pt")


@pytest.fixture(scope="module")
def targets(model, sample) -> torch.Tensor:
    """(200, 50) normalised targets x_norm - b_dec of sample words spread over the vocabulary."""
    x = torch.from_numpy(sample.vectors[::25])
    return (model.normalise(x) - model.b_dec).detach()


# k=8 updates the correlations through the Gram matrix only; k=30 also recomputes them from the
# residual once the support passes D / BAG_RATIO = 25 atoms.
@pytest.mark.parametrize("k", [8, 30])
def test_omp_equals_a_float64_reference_on_sample_data(model, targets, k):
    assert assert_matches_reference(targets, model.W_dec.detach(), k, nonneg=False) == 0


@pytest.mark.parametrize("k", [8, 30])
def test_nonneg_omp_equals_a_float64_reference_on_sample_data(model, targets, k):
    stopped = assert_matches_reference(targets, model.W_dec.detach(), k, nonneg=True)
    if k == 30:
        assert stopped > 0  # the early stop is exercised, and agrees with the reference


def test_omp_on_a_dictionary_that_is_not_square_nor_unit_norm():
    """H = 37 pads to whole blocks; atoms of any norm; a zero row gets a zero code."""
    g = torch.Generator().manual_seed(0)
    atoms = torch.randn(37, 10, generator=g, dtype=torch.float64) * torch.rand(37, 1, generator=g, dtype=torch.float64).add(0.5)
    target = torch.randn(40, 10, generator=g, dtype=torch.float64)
    target[7] = 0
    assert assert_matches_reference(target, atoms, 6, nonneg=False) == 1  # only the zero row stops
    assert assert_matches_reference(target, atoms, 6, nonneg=True) >= 1
    assert Dictionary.of(atoms).atoms.shape[0] % Dictionary.of(atoms).n_blocks == 0


def test_float32_omp_agrees_with_float64(model, targets):
    dictionary = Dictionary.of(model.W_dec.detach())
    for nonneg in (False, True):
        f32 = omp(targets, dictionary, 8, nonneg=nonneg)
        f64 = omp(targets.double(), model.W_dec.detach().double(), 8, nonneg=nonneg)
        same = (f32.indices == f64.indices).all(1)
        assert same.float().mean() >= 0.99
        np.testing.assert_allclose(f32.acts[same].numpy(), f64.acts[same].numpy(), rtol=1e-3, atol=1e-4)


def test_nonneg_codes_are_positive_and_fit_worse_than_signed_but_better_than_the_encoder(model, targets):
    signed = omp(targets, model.W_dec.detach(), 8)
    nonneg = omp(targets, model.W_dec.detach(), 8, nonneg=True)
    assert torch.all(nonneg.acts >= 0) and (signed.acts < 0).any()
    enc = model.encode_normalised(targets + model.b_dec, 8)

    @torch.no_grad()
    def sse(acts, indices):
        return float((targets + model.b_dec - model.decode_normalised(acts, indices)).pow(2).sum())

    assert sse(signed.acts, signed.indices) < sse(nonneg.acts, nonneg.indices) < sse(enc.acts, enc.indices)


def test_pursuit_codes_keep_the_reconstruction_contract(tmp_path, run_dir, sample):
    """Codes written by encode --method omp, decoded with the raw model.pt tensors, are the least-squares
    fit of the normalised target on their atoms: the residual is orthogonal to every chosen atom."""
    out = tmp_path / "omp.h5"
    summary = sc.encode_file(run_dir, SAMPLE, out, method="omp", device="cpu", batch_size=1500)
    codes = sc.load_codes(out)
    assert summary["nnz"] == codes.nnz and summary["method"] == "omp"
    s = torch.load(run_dir / "model.pt", weights_only=True)
    rows = np.arange(0, 5000, 7)
    z = torch.from_numpy(codes.dense(rows)).double()
    W, b, scale, mean = (s[n].double() for n in ("W_dec", "b_dec", "input_scale", "input_mean"))
    h = torch.from_numpy(sample.vectors[rows]).double() - mean
    if bytes(s["meta.geometry"].tolist()) == b"cosine":  # topk's default: offsets at length sqrt(D)
        h = h / h.norm(dim=1, keepdim=True) * (h.shape[1] ** 0.5 * scale)
    x = h + mean  # the rows the model reconstructs
    x_hat = (z @ W + b) * scale + mean
    residual = (x - mean) / scale - b - z @ W  # normalised target minus its reconstruction
    used = z != 0
    assert torch.all(used.sum(1) == 8)
    assert (residual @ W.T)[used].abs().max() < 1e-4 * residual.norm(dim=1).max()
    # Same FVU as the statistics computed without the file, far below the encoder's.
    fvu = float((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    model = sc.SparseAutoencoder.load(run_dir / "model.pt")
    stats = code_statistics(model, torch.from_numpy(sample.vectors[rows]), 8, method="omp")
    assert fvu == pytest.approx(stats["fvu"], rel=1e-4)
    assert stats["fvu"] < 0.8 * code_statistics(model, torch.from_numpy(sample.vectors[rows]), 8)["fvu"]


def test_compare_methods_reports_all_three_side_by_side(model, sample):
    x = torch.from_numpy(sample.vectors[:2000])
    result = compare_methods(model, x, 8, batch_size=700)
    assert list(result) == ["encoder", "omp", "omp_nonneg"]
    assert result["omp"]["fvu"] < result["omp_nonneg"]["fvu"] < result["encoder"]["fvu"]
    assert result["omp"]["fvu"] == pytest.approx(code_statistics(model, x, 8, method="omp")["fvu"], rel=1e-6)
    assert all(r["seconds"] > 0 and 0 < r["mean_l0"] <= 8 for r in result.values())


def test_pursuit_coder_splits_cpu_batches_without_changing_codes(model, sample, monkeypatch):
    import sparsecode.pursuit as pursuit

    x = torch.from_numpy(sample.vectors[:500])
    whole = PursuitCoder(model).encode(x, 8)
    monkeypatch.setattr(pursuit, "CPU_ROWS", 64)
    split = PursuitCoder(model).encode(x, 8)
    assert torch.equal(whole.indices, split.indices) and torch.allclose(whole.acts, split.acts, atol=1e-6)


def test_cli_encode_omp_then_inspect_and_neighbors(tmp_path, run_dir):
    signed, nonneg = tmp_path / "omp.h5", tmp_path / "nnomp.h5"
    res = run("encode", run_dir, SAMPLE, "--out", signed, "--method", "omp", "--k", 6, "--quiet")
    assert "omp" in res.stdout and "5,000" in res.stdout
    run("encode", run_dir, SAMPLE, "--out", nonneg, "--method", "omp", "--nonneg", "--k", 6, "--quiet")
    with h5py.File(signed) as f:
        assert f.attrs["encode_method"] == "omp" and not f.attrs["encode_nonneg"] and f.attrs["encode_k"] == 6
        assert (f["codes/data"][...] < 0).any() and np.all(f["codes/data"][...] != 0)
    with h5py.File(nonneg) as f:
        assert f.attrs["encode_method"] == "omp" and f.attrs["encode_nonneg"]
        assert np.all(f["codes/data"][...] > 0)
    codes = sc.load_codes(signed)
    assert codes.l0().max() == 6
    dense = codes.dense()
    np.testing.assert_array_equal(codes.frequency, (dense != 0).sum(0))  # words using a unit, either sign
    for unit in range(0, 200, 10):  # a unit's top words are its largest coefficients
        col = np.where(dense[:, unit] != 0, dense[:, unit], -np.inf)
        order = np.argsort(-col, kind="stable")[:10]
        order = order[np.isfinite(col[order])]
        assert [w for w, _ in codes.top_words(unit)] == [codes.words[i] for i in order]
    values = [v for _, v in codes.active_units("paris")]  # signed codes are listed by value
    assert len(values) == 6 and values == sorted(values, reverse=True)
    word = json.loads(run("inspect", signed, "--word", "paris", "--json").stdout)
    assert [e["value"] for e in word["active_units"]] == pytest.approx(values)
    assert "nearest to 'king'" in run("neighbors", signed, "king").stdout


def test_cli_pursuit_bad_input_is_one_line(tmp_path, run_dir):
    out = tmp_path / "c.h5"
    one_line_error(run("encode", run_dir, SAMPLE, "--out", out, "--method", "omp", "--k", 0, ok=False),
                   "--k must be between 1 and the hidden size 200 (got 0)")
    one_line_error(run("encode", run_dir, SAMPLE, "--out", out, "--method", "omp", "--k", 201, ok=False),
                   "--k must be between 1 and the hidden size 200 (got 201)")
    one_line_error(run("encode", run_dir, SAMPLE, "--out", out, "--method", "omp", "--k", 51, ok=False),
                   "--k 51 is larger than the 50 input dimensions")
    one_line_error(run("encode", run_dir, SAMPLE, "--out", out, "--method", "lasso", ok=False),
                   "--method 'lasso' is unknown; use one of encoder, omp")
    one_line_error(run("encode", run_dir, SAMPLE, "--out", out, "--nonneg", ok=False),
                   "--nonneg applies to --method omp only")
    assert not out.exists()
