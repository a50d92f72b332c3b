"""Pursuit encoding: agreement with a plain float64 OMP, non-negativity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sparsecode as sc
from sparsecode.pursuit import Dictionary, PursuitCoder, omp


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



def test_pursuit_coder_splits_cpu_batches_without_changing_codes(model, sample, monkeypatch):
    import sparsecode.pursuit as pursuit

    x = torch.from_numpy(sample.vectors[:500])
    whole = PursuitCoder(model).encode(x, 8)
    monkeypatch.setattr(pursuit, "CPU_ROWS", 64)
    split = PursuitCoder(model).encode(x, 8)
    assert torch.equal(whole.indices, split.indices) and torch.allclose(whole.acts, split.acts, atol=1e-6)

