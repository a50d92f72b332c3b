"""Training objectives: normalised reconstruction error and the AuxK auxiliary loss.

Both losses are fractions of variance: the summed squared error divided by the summed squared
deviation of the target about its mean. Because the model's input normalisation is an affine map
with one scalar scale, the fraction computed on the normalised scale equals the one on the
original scale (the FVU a user would compute), so no de-normalisation is needed.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .topk import decode


class Reconstruction(NamedTuple):
    """Per-batch reconstruction statistics (0-d tensors, still on the device)."""

    sse: Tensor
    """Sum of squared errors over the batch."""
    ssd: Tensor
    """Sum of squared deviations of the inputs about the data mean."""

    @property
    def fvu(self) -> Tensor:
        """Fraction of variance unexplained: ``sse / ssd``."""
        return self.sse / self.ssd.clamp_min(1e-12)


def reconstruction(x: Tensor, x_hat: Tensor, data_mean: Tensor) -> Reconstruction:
    """Statistics of reconstructing (B, D) ``x`` by ``x_hat``; ``data_mean`` (D,) is the mean of
    the whole data set, so that the per-batch ratios add up to the data set's FVU."""
    return Reconstruction((x - x_hat).pow(2).sum(), (x - data_mean).pow(2).sum())


def auxk_loss(residual: Tensor, aux_acts: Tensor, aux_indices: Tensor, W_dec: Tensor, any_dead: Tensor,
              variance: Tensor | None = None) -> Tensor:
    """AuxK (Gao et al. 2024): reconstruct the main model's residual from dead units alone.

    residual: (B, D) ``x - x_hat``, detached here so that this loss trains only the dead units;
    aux_acts, aux_indices: (B, aux_k) the dead units' top activations; W_dec: (H, D);
    any_dead: 0-d bool, whether any unit is dead (without it the loss is 0).

    The decoder bias is deliberately not added: the residual already excludes it. Normalised by
    the residual's variance about its batch mean, as in the paper; ``variance`` replaces it when
    given (the whole batch's, when the batch is split over processes).
    """
    residual = residual.detach()
    aux_hat = decode(aux_acts, aux_indices, W_dec, W_dec.new_zeros(W_dec.shape[1]))
    err = (residual - aux_hat).pow(2).sum()
    var = (residual - residual.mean(0)).pow(2).sum().clamp_min(1e-12) if variance is None else variance
    return torch.where(any_dead, err / var, torch.zeros_like(err))
