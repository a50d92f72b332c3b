"""Reconstruction FVU and the AuxK loss."""

from __future__ import annotations

import torch

from sparsecode.objectives import auxk_loss, reconstruction


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
