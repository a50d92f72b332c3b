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

from .model import dense_activation
from .topk import decode

if TYPE_CHECKING:
    from .config import TrainConfig
    from .distributed import Distributed
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


def spread(rows: Tensor) -> Tensor:
    """0-d: the squared deviation of (B, D) ``rows`` about their mean row, summed over rows and columns."""
    return (rows - rows.mean(0)).pow(2).sum()


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
    var = spread(residual).clamp_min(1e-12) if variance is None else variance
    return torch.where(any_dead, err / var, torch.zeros_like(err))


def kl_divergence(rho: float, rho_hat: Tensor) -> Tensor:
    """KL(ρ ‖ ρ̂) between Bernoulli distributions, elementwise; ``rho_hat`` inside (0, 1)."""
    return rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))


def firing_rate(acts: Tensor, batch_mean=None) -> Tensor:
    """ρ̂: (B, H) non-negative activations -> (H,) differentiable mean firing rate in [EPS, 1 - EPS].

    Each activation counts through ``tanh(z / FIRING_SCALE)``, a soft, bounded version of "fired" (0
    at 0, near 1 for a clear activation), so ρ̂ follows the fraction of rows a unit fires on and, unlike
    ``(acts > 0).float().mean(0)``, has a gradient. The affine squeeze keeps the logarithms of
    the KL finite without clamping (a clamp would cut the gradient at the bounds). ``batch_mean``
    replaces the mean over rows (see :meth:`Objective.batch_mean`: the global batch's).
    """
    soft = torch.tanh(acts / FIRING_SCALE)
    return EPS + (1 - 2 * EPS) * (soft.mean(0) if batch_mean is None else batch_mean(soft))


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
    """A sparsity objective: ``step`` maps a batch to a :class:`StepCodes`.

    With several processes (``dist``, a :class:`~sparsecode.distributed.Distributed`, given by the
    trainer: the objectives do not import torch.distributed; None is one process) each holds a
    slice of the global batch of ``rows`` rows. Batch statistics are then those of the global batch
    (the same in every process), and a penalty follows the loss's convention of the training loop:
    its mean over the processes is the global batch's penalty, and so is the mean of its gradients,
    which DistributedDataParallel takes (hence the factor ``world`` on what flows back locally).
    """

    name = ""

    def __init__(self, cfg: "TrainConfig", dist: "Distributed | None" = None):
        self.cfg = cfg
        self.dist = dist
        self.split = dist is not None and dist.active
        """Whether the batch is split over several processes."""

    def step(self, model: "SparseAutoencoder", x: Tensor, k: int, aux_k: int = 0, dead: Tensor | None = None,
             t: int = 0, rows: int | None = None) -> StepCodes:
        """Codes of the (B, D) normalised inputs ``x`` at 0-based step ``t`` with the current ``k``;
        AuxK picks ``aux_k`` units among the ``dead`` (H,) ones (top-k objectives only). ``rows`` is
        the global batch's size (default B: one process)."""
        raise NotImplementedError

    def batch_mean(self, per_row: Tensor, rows: int) -> Tensor:
        """(B, ...) -> (...) the mean over the global batch's ``rows`` rows (all-reduced: the same in
        every process), its gradient flowing to this process's rows, times ``world``."""
        if not self.split:
            return per_row.mean(0)
        return self.dist.sum_with_local_grad(per_row.sum(0)) / rows

    def share(self, local_sum: Tensor, denominator: float) -> Tensor:
        """``local_sum / denominator``, where the global value divides the sum over every process's rows
        by ``denominator``: this process's share, times ``world`` (their mean is the global value)."""
        return self.dist.ddp_share(local_sum / denominator) if self.split else local_sum / denominator


class TopK(Objective):
    """The k largest pre-activations of each row, through :class:`sparsecode.topk.TopKEncode`."""

    name = "topk"

    def step(self, model, x, k, aux_k=0, dead=None, t=0, rows=None) -> StepCodes:
        enc = model.encode_normalised(x, k, aux_k, dead)
        counts, row_l0 = _sparse_stats(enc.acts, enc.indices, model.n_hidden)
        x_hat = model.decode_normalised(enc.acts, enc.indices)
        return StepCodes(x_hat, x.new_zeros(()), counts, row_l0, enc.aux_acts, enc.aux_indices)


class BatchTopK(Objective):
    """The k·B largest activations of the batch; updates the model's encode-time threshold.

    The threshold is the running mean of the smallest activation kept per batch (an exponential
    mean with weight ``THRESHOLD_DECAY``, bias-corrected so that it needs no state besides the step).
    With several processes the k·B are those of the global batch and the threshold is one, the same
    in every process (see :meth:`_global_top`).
    """

    name = "batchtopk"
    THRESHOLD_DECAY = 0.99

    def step(self, model, x, k, aux_k=0, dead=None, t=0, rows=None) -> StepCodes:
        rows = x.shape[0] if rows is None else rows
        pre = model.pre_acts(x)
        acts = torch.relu(pre)
        B, H = acts.shape
        n_keep = min(k * rows, rows * H)
        if self.split:
            z, kept_vals = self._global_top(acts, n_keep)
        else:
            kept_vals, kept_flat = acts.reshape(-1).topk(n_keep, sorted=False)
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

    def _global_top(self, acts: Tensor, n_keep: int) -> tuple[Tensor, Tensor]:
        """The ``n_keep`` largest activations of the global batch, this process's slice holding (B, H)
        ``acts``: the codes (those of ``acts`` at or above the n_keep-th largest value, positive) and
        the n_keep values kept (the same in every process).

        Each process offers its own n_keep largest (padded with -1, below any activation), one
        all-gather collects them, and the n_keep largest of those are the global batch's.
        """
        with torch.no_grad():
            flat = acts.detach().reshape(-1)
            local = flat.topk(min(n_keep, flat.numel()), sorted=False).values
            offer = torch.cat([local, local.new_full((n_keep - local.numel(),), -1.0)])
            kept_vals = self.dist.all_gather(offer).topk(n_keep, sorted=False).values
            cutoff = kept_vals.min()
        return torch.where((acts >= cutoff) & (acts > 0), acts, 0.0), kept_vals


class KL(Objective):
    """β · mean over units of KL(ρ ‖ ρ̂_j), ρ̂_j from :func:`firing_rate`, on ReLU codes."""

    name = "kl"

    def step(self, model, x, k=0, aux_k=0, dead=None, t=0, rows=None) -> StepCodes:
        rows = x.shape[0] if rows is None else rows
        z = dense_activation(self.name, model.pre_acts(x))
        rate = firing_rate(z, lambda soft: self.batch_mean(soft, rows))
        penalty = self.cfg.resolved("beta") * kl_divergence(self.cfg.resolved("rho"), rate).mean()
        return _dense_codes(model, z, penalty)


class L1(Objective):
    """λ · Σ|z| / (B·√D) on ReLU codes: the codes' L1 norm relative to the inputs' typical norm.

    Normalised inputs have a mean squared norm of D, and with unit-norm decoder rows
    ‖x̂ - b_dec‖ ≤ Σ|z|: the ratio is about 1 for a code that spends its mass efficiently, so λ
    means the same on any data set and dimension.
    """

    name = "l1"

    def step(self, model, x, k=0, aux_k=0, dead=None, t=0, rows=None) -> StepCodes:
        rows = x.shape[0] if rows is None else rows
        z = dense_activation(self.name, model.pre_acts(x))
        return _dense_codes(model, z, self.share(self.cfg.resolved("l1_coef") * z.sum(), rows * x.shape[1] ** 0.5))


class Spine(Objective):
    """SPINE's losses on activations capped in [0, 1]: ``SPINE_WEIGHT`` x (ASL + PSL) (Subramanian et al. 2018).

    ASL: mean over units of ``relu(mean_b z_j - ρ*)²`` (only activity above the target counts);
    PSL: mean of ``z (1 - z)``, pushing every activation to 0 or 1.
    """

    name = "spine"

    def step(self, model, x, k=0, aux_k=0, dead=None, t=0, rows=None) -> StepCodes:
        rows = x.shape[0] if rows is None else rows
        z = dense_activation(self.name, model.pre_acts(x))
        asl = torch.relu(self.batch_mean(z, rows) - self.cfg.resolved("rho")).pow(2).mean()
        psl = (z * (1 - z)).mean() if not self.split else self.share((z * (1 - z)).sum(), rows * z.shape[1])
        return _dense_codes(model, z, SPINE_WEIGHT * (asl + psl))


OBJECTIVES = {cls.name: cls for cls in (TopK, BatchTopK, KL, L1, Spine)}


def make_objective(cfg: "TrainConfig", dist: "Distributed | None" = None) -> Objective:
    """The objective object for ``cfg.sparsity`` (``dist``: the processes that share each batch)."""
    return OBJECTIVES[cfg.sparsity](cfg, dist)
