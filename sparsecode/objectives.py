"""Training objectives: the reconstruction error, the sparsity objectives and AuxK.

One class per sparsity objective (``--sparsity``), each with one method, ``step``: from a batch
of normalised inputs to the reconstruction, the sparsity penalty and which units fired.

- :class:`TopK` (default): the k largest pre-activations per row (Makhzani and Frey 2013; the
  fused autograd function of :mod:`sparsecode.topk`). No penalty: sparsity is exact.
- :class:`BatchTopK` (Bussmann et al. 2024): the k·B largest activations of the whole batch, so
  a word may use more or fewer than k units; encoding uses a threshold, the running mean of the
  smallest activation kept per batch.
- :class:`KL`: the classic sparse-autoencoder penalty, β·KL(ρ ‖ ρ̂_j) averaged over units, with
  ρ̂_j a differentiable batch mean of each unit's (soft, bounded) activation.
- :class:`L1`: λ times the codes' L1 norm, relative to the inputs' norm (scale-free).
- :class:`Spine` (Subramanian et al. 2018): activations capped in [0, 1], average sparsity loss
  (only activity above ρ* penalised) plus partial sparsity loss h(1-h).

All codes have exact zeros (ReLU or capped ReLU) and unit-norm decoder rows (so that the L1 and
KL penalties cannot be dodged by shrinking codes and growing the decoder).

Both losses are fractions of variance: the summed squared error divided by the summed squared
deviation of the target about its mean. Because the model's input normalisation is an affine map
with one scalar scale, the fraction computed on the normalised scale equals the one on the
original scale (the FVU a user would compute), so no de-normalisation is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

from .topk import decode

if TYPE_CHECKING:
    from .config import TrainConfig
    from .model import SparseAutoencoder

#: ρ̂ is squeezed into [EPS, 1 - EPS] (an affine map: the gradient survives) before the KL divergence.
EPS = 1e-4
#: The activation at which a unit counts as about three quarters "fired" in ρ̂ (``tanh(z / FIRING_SCALE)``).
#: Codes live on the normalised scale (unit-variance inputs, unit-norm decoder rows), where useful
#: activations are of order 1. On the GloVe sample (H=1000, rho=0.05, beta=10, 50 epochs) 0.1 put 96% of
#: the units within [rho/3, 3 rho]; 1 (plain tanh) let 78% of the units fire on more than 3 rho of the
#: words with many small activations (the model shrinks its codes instead of silencing units).
FIRING_SCALE = 0.1
#: SPINE's sparsity losses weigh this many times the FVU. SPINE (Subramanian et al. 2018) weighs them
#: equally with an MSE on raw GloVe, whose dimensions have a variance of about 0.2; our FVU is on
#: unit-variance inputs. On the GloVe sample (H=1000, rho*=0.15, 50 epochs): 74% zeros with weight 1, 82%
#: with 5, 87% with 10 (and the FVU 0.040, 0.058, 0.080).
SPINE_WEIGHT = 5.0


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


def kl_divergence(rho: float, rho_hat: Tensor) -> Tensor:
    """KL(ρ ‖ ρ̂) between Bernoulli distributions, elementwise; ``rho_hat`` inside (0, 1)."""
    return rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))


def firing_rate(acts: Tensor) -> Tensor:
    """ρ̂: (B, H) non-negative activations -> (H,) differentiable mean firing rate in [EPS, 1 - EPS].

    Each activation counts through ``tanh(z / FIRING_SCALE)``, a soft, bounded version of "fired" (0
    at 0, near 1 for a clear activation), so ρ̂ follows the fraction of rows a unit fires on and, unlike
    ``(acts > 0).float().mean(0)``, has a gradient. The affine squeeze keeps the logarithms of
    the KL finite without clamping (a clamp would cut the gradient at the bounds).
    """
    return EPS + (1 - 2 * EPS) * torch.tanh(acts / FIRING_SCALE).mean(0)


class StepCodes(NamedTuple):
    """What an objective's ``step`` returns for one batch (all tensors on the device)."""

    x_hat: Tensor
    """(B, D) reconstruction, normalised scale."""
    penalty: Tensor
    """0-d sparsity term, weighted, added to the FVU (0 for the top-k objectives)."""
    counts: Tensor
    """(H,) float, the number of rows each unit is active in (no gradient)."""
    row_l0: Tensor
    """(B,) active units per row."""
    aux_acts: Tensor
    """(B, aux_k) AuxK activations among dead units ((B, 0) without AuxK)."""
    aux_indices: Tensor
    """(B, aux_k) their unit ids."""


def _sparse_stats(acts: Tensor, indices: Tensor, n_units: int) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        active = acts > 0
        counts = acts.new_zeros(n_units).index_add_(0, indices.reshape(-1), active.reshape(-1).to(acts.dtype))
        return counts, active.sum(1)


def _dense_codes(model: "SparseAutoencoder", z: Tensor, penalty: Tensor, aux: tuple[Tensor, Tensor] | None = None) -> StepCodes:
    with torch.no_grad():
        active = z > 0
        counts, row_l0 = active.sum(0).to(z.dtype), active.sum(1)
    empty = z.new_zeros(z.shape[0], 0)
    aux_acts, aux_idx = aux if aux is not None else (empty, empty.long())
    return StepCodes(model.decode_dense_normalised(z), penalty, counts, row_l0, aux_acts, aux_idx)


class Objective:
    """A sparsity objective: ``step`` maps a batch to a :class:`StepCodes`."""

    name = ""

    def __init__(self, cfg: "TrainConfig"):
        self.cfg = cfg

    def step(self, model: "SparseAutoencoder", x: Tensor, k: int, aux_k: int = 0, dead: Tensor | None = None,
             t: int = 0) -> StepCodes:
        """Codes of the (B, D) normalised inputs ``x`` at 0-based step ``t`` with the current ``k``;
        AuxK picks ``aux_k`` units among the ``dead`` (H,) ones (top-k objectives only)."""
        raise NotImplementedError


class TopK(Objective):
    """The k largest pre-activations of each row, through :class:`sparsecode.topk.TopKEncode`."""

    name = "topk"

    def step(self, model, x, k, aux_k=0, dead=None, t=0) -> StepCodes:
        enc = model.encode_normalised(x, k, aux_k, dead)
        counts, row_l0 = _sparse_stats(enc.acts, enc.indices, model.n_hidden)
        x_hat = model.decode_normalised(enc.acts, enc.indices)
        return StepCodes(x_hat, x.new_zeros(()), counts, row_l0, enc.aux_acts, enc.aux_indices)


class BatchTopK(Objective):
    """The k·B largest activations of the batch; updates the model's encode-time threshold.

    The threshold is the running mean of the smallest activation kept per batch (an exponential
    mean with weight ``THRESHOLD_DECAY``, bias-corrected so that it needs no state besides the step).
    """

    name = "batchtopk"
    THRESHOLD_DECAY = 0.99

    def step(self, model, x, k, aux_k=0, dead=None, t=0) -> StepCodes:
        pre = model.pre_acts(x)
        acts = torch.relu(pre)
        B, H = acts.shape
        kept_vals, kept_flat = acts.reshape(-1).topk(min(k * B, B * H), sorted=False)
        mask = torch.zeros(B * H, dtype=torch.bool, device=x.device).index_fill_(0, kept_flat, True).view(B, H)
        z = torch.where(mask & (acts > 0), acts, 0.0)
        with torch.no_grad():
            positive = torch.where(kept_vals > 0, kept_vals, torch.inf)
            smallest = torch.where(torch.isfinite(positive.min()), positive.min(), model.threshold)
            weight = (1 - self.THRESHOLD_DECAY) / (1 - self.THRESHOLD_DECAY ** (t + 1))
            model.threshold.add_((smallest - model.threshold) * weight)
        aux = None
        if aux_k > 0:
            masked = pre.masked_fill(~dead, float("-inf"))
            aux_idx = masked.topk(aux_k, dim=1, sorted=False).indices
            aux = (torch.where(dead[aux_idx], acts.gather(1, aux_idx), 0.0), aux_idx)
        return _dense_codes(model, z, x.new_zeros(()), aux)


class KL(Objective):
    """β · mean over units of KL(ρ ‖ ρ̂_j), ρ̂_j from :func:`firing_rate`, on ReLU codes."""

    name = "kl"

    def step(self, model, x, k=0, aux_k=0, dead=None, t=0) -> StepCodes:
        z = torch.relu(model.pre_acts(x))
        penalty = self.cfg.resolved("beta") * kl_divergence(self.cfg.rho_value, firing_rate(z)).mean()
        return _dense_codes(model, z, penalty)


class L1(Objective):
    """λ · Σ|z| / (B·√D) on ReLU codes: the codes' L1 norm relative to the inputs' typical norm.

    Normalised inputs have a mean squared norm of D, and with unit-norm decoder rows
    ‖x̂ - b_dec‖ ≤ Σ|z|: the ratio is about 1 for a code that spends its mass efficiently, so λ
    means the same on any data set and dimension.
    """

    name = "l1"

    def step(self, model, x, k=0, aux_k=0, dead=None, t=0) -> StepCodes:
        z = torch.relu(model.pre_acts(x))
        return _dense_codes(model, z, self.cfg.resolved("l1_coef") * z.sum() / (x.shape[0] * x.shape[1] ** 0.5))


class Spine(Objective):
    """SPINE's losses on activations capped in [0, 1]: ``SPINE_WEIGHT`` x (ASL + PSL) (Subramanian et al. 2018).

    ASL: mean over units of ``relu(mean_b z_j - ρ*)²`` (only activity above the target counts);
    PSL: mean of ``z (1 - z)``, pushing every activation to 0 or 1.
    """

    name = "spine"

    def step(self, model, x, k=0, aux_k=0, dead=None, t=0) -> StepCodes:
        z = model.pre_acts(x).clamp(0, 1)
        asl = torch.relu(z.mean(0) - self.cfg.rho_value).pow(2).mean()
        psl = (z * (1 - z)).mean()
        return _dense_codes(model, z, SPINE_WEIGHT * (asl + psl))


OBJECTIVES = {cls.name: cls for cls in (TopK, BatchTopK, KL, L1, Spine)}


def make_objective(cfg: "TrainConfig") -> Objective:
    """The objective object for ``cfg.sparsity``."""
    return OBJECTIVES[cfg.sparsity](cfg)
