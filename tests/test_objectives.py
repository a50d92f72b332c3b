"""Reconstruction FVU, the AuxK loss and the sparsity objectives' math (exact values)."""

from __future__ import annotations

import math

import torch

from sparsecode.config import TrainConfig
from sparsecode.model import SparseAutoencoder
from sparsecode.objectives import (EPS, SPINE_WEIGHT, BatchTopK, L1, Spine, auxk_loss, firing_rate, kl_divergence,
                                   reconstruction)


def test_fvu_on_normalised_scale_equals_fvu_on_original_scale(sample):
    x = torch.from_numpy(sample.vectors[:1000]).double()
    x_hat = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean = x.mean(0)
    original = ((x - x_hat) ** 2).sum() / ((x - mean) ** 2).sum()
    scale = 3.7
    rec = reconstruction((x - mean) / scale, (x_hat - mean) / scale, torch.zeros(50, dtype=torch.float64))
    torch.testing.assert_close(rec.fvu, original)


def test_auxk_reconstructs_the_residual_without_decoder_bias():
    W_dec = torch.eye(4)
    residual = torch.tensor([[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 3.0, 1.0]])
    aux_acts = torch.tensor([[1.0], [3.0]])
    aux_idx = torch.tensor([[0], [2]])
    # Residual after the aux reconstruction: [[0, 2, 0, 0], [0, 0, 0, 1]] -> error 5.
    # Variance about the batch mean: mean [0.5, 1, 1.5, 0.5] -> 2 * (0.25 + 1 + 2.25 + 0.25) = 7.5.
    loss = auxk_loss(residual, aux_acts, aux_idx, W_dec, torch.tensor(True))
    torch.testing.assert_close(loss, torch.tensor(5.0 / 7.5))
    assert auxk_loss(residual, aux_acts, aux_idx, W_dec, torch.tensor(False)) == 0


def test_auxk_detaches_the_residual_and_trains_dead_units():
    W_dec = torch.eye(4).requires_grad_()
    source = torch.ones(2, 4, requires_grad=True)
    residual = source * torch.tensor([[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 3.0, 1.0]])
    aux_acts = torch.tensor([[1.0], [3.0]], requires_grad=True)
    loss = auxk_loss(residual, aux_acts, torch.tensor([[0], [2]]), W_dec, torch.tensor(True))
    loss.backward()
    assert source.grad is None  # nothing flows back into the main model through the residual
    assert aux_acts.grad is not None and W_dec.grad is not None


# -- the sparsity objectives: their math ---------------------------------------------------------
def _model(d_in: int, n_hidden: int, sparsity: str, seed: int = 0) -> SparseAutoencoder:
    model = SparseAutoencoder(d_in, n_hidden, sparsity=sparsity)
    model.initialise(torch.randn(64, d_in, generator=torch.Generator().manual_seed(seed)),
                     generator=torch.Generator().manual_seed(seed))
    return model


def test_kl_divergence_exact_values():
    # KL(0.05 || 0.05) = 0; KL(0.05 || 0.5) = 0.05 ln 0.1 + 0.95 ln 1.9.
    rho_hat = torch.tensor([0.05, 0.5], dtype=torch.float64)
    expected = torch.tensor([0.0, 0.05 * math.log(0.1) + 0.95 * math.log(1.9)], dtype=torch.float64)
    torch.testing.assert_close(kl_divergence(0.05, rho_hat), expected)


def test_kl_rate_has_a_gradient_where_the_thresholded_count_has_none():
    pre = torch.randn(32, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    shift = torch.zeros(6, dtype=torch.float64, requires_grad=True)  # like the encoder bias
    acts = torch.relu(pre + shift)
    # The forum version: rho_hat from (h > 0) counts. It carries no gradient at all.
    counted = (acts > 0).double().mean(0).clamp(EPS, 1 - EPS)
    assert not counted.requires_grad
    # Ours: a differentiable batch mean, inside (0, 1), whose KL pushes every over-active unit down.
    rate = firing_rate(acts)
    assert torch.all((rate > 0) & (rate < 1))
    kl_divergence(0.05, rate).sum().backward()
    assert torch.all(shift.grad > 0)  # about half the rows fire, rho is 0.05: lower every unit
    # A unit that never fires stays inside (0, 1): the logarithms stay finite.
    silent = firing_rate(torch.zeros(8, 3, dtype=torch.float64))
    torch.testing.assert_close(silent, torch.full((3,), EPS, dtype=torch.float64))
    assert torch.all(torch.isfinite(kl_divergence(0.05, silent)))


def test_kl_penalty_pulls_a_collapsed_unit_down():
    """A unit firing on every input (the one-unit collapse) gets the push; units at rho get none."""
    g = torch.Generator().manual_seed(1)
    pre = torch.full((100, 4), -1.0, dtype=torch.float64)
    pre[:, 0] = torch.rand(100, generator=g, dtype=torch.float64) * 2 + 0.01  # unit 0 fires on every row
    pre[:5, 1:] = 1.0  # the others on 5 rows of 100: exactly rho
    shift = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    acts = torch.relu(pre + shift)
    kl_divergence(0.05, firing_rate(acts)).sum().backward()
    assert shift.grad[0] > 1.0 and torch.all(shift.grad[1:].abs() < 1e-3 * shift.grad[0])


def test_batchtopk_keeps_the_batch_largest_and_learns_the_threshold():
    model = _model(4, 3, "batchtopk")
    with torch.no_grad():
        model.W_enc.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]))
        model.b_enc.zero_()
        model.b_dec.zero_()
    x = torch.tensor([[3.0, 2.0, -1.0, 0.0], [0.5, 4.0, 1.0, 0.0]])
    codes = BatchTopK(TrainConfig(sparsity="batchtopk", k=2)).step(model, x, k=2, t=0)
    # k*B = 4 largest activations of the batch: 4, 3, 2, 1 (0.5 is left out, -1 is not positive).
    z = torch.zeros(2, 3)
    z[0, 0], z[0, 1], z[1, 1], z[1, 2] = 3.0, 2.0, 4.0, 1.0
    torch.testing.assert_close(model.decode_dense_normalised(z), codes.x_hat)
    assert codes.row_l0.tolist() == [2, 2] and codes.counts.tolist() == [1.0, 2.0, 1.0]
    # First step: the threshold is the smallest kept activation (bias-corrected running mean).
    torch.testing.assert_close(model.threshold, torch.tensor(1.0))
    x2 = torch.tensor([[5.0, 3.0, 0.0, 0.0], [0.0, 6.0, 4.0, 0.0]])
    BatchTopK(TrainConfig(sparsity="batchtopk", k=2)).step(model, x2, k=2, t=1)
    w = 0.01 / (1 - 0.99**2)
    torch.testing.assert_close(model.threshold, torch.tensor(1.0 + (3.0 - 1.0) * w))


def test_l1_and_spine_penalties_exact():
    model = _model(4, 2, "l1")
    with torch.no_grad():
        model.W_enc.copy_(torch.tensor([[1.0, 0], [0, 1], [0, 0], [0, 0]]))
        model.b_enc.zero_()
        model.b_dec.zero_()
    x = torch.tensor([[2.0, -1.0, 0.0, 0.0], [0.5, 0.25, 0.0, 0.0]])
    cfg = TrainConfig(sparsity="l1", l1_coef=0.3)
    codes = L1(cfg).step(model, x)
    # relu codes: [[2, 0], [0.5, 0.25]]; L1 = 2.75; B * sqrt(D) = 2 * 2.
    torch.testing.assert_close(codes.penalty, torch.tensor(0.3 * 2.75 / 4))
    spine = _model(4, 2, "spine")
    spine.load_state_dict(model.state_dict(), strict=False)
    codes = Spine(TrainConfig(sparsity="spine", rho=0.15)).step(spine, x)
    # capped codes [[1, 0], [0.5, 0.25]]: unit means 0.75, 0.125 -> ASL = mean(0.6^2, 0) = 0.18;
    # PSL = mean(0, 0, 0.25, 0.1875) = 0.109375.
    torch.testing.assert_close(codes.penalty, torch.tensor(SPINE_WEIGHT * (0.18 + 0.109375)))
