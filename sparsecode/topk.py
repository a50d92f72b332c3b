"""The k-sparse core: top-k encoding and sparse decoding as custom autograd functions.

For a batch x (B, D), encoder weights W_enc (D, H) and bias b_enc (H,), the pre-activations are
``pre = x @ W_enc + b_enc`` and the code keeps, per row, the k units S(b) with the largest ``pre``:

    acts[b, j] = relu(pre[b, S(b)_j]),        x_hat = sum_j acts[b, j] W_dec[S(b)_j] + b_dec

Through a top-k, only the k selected pre-activations of a row receive a gradient. With
g[b, j] = d loss / d pre[b, S(b)_j] (zero where the ReLU clamped), the encoder's gradients are

    d W_enc[:, u] = sum over (b, j) with S(b)_j = u of g[b, j] x[b]      d b_enc[u] = sum of those g[b, j]
    d x[b]        = sum_j g[b, j] W_enc[:, S(b)_j]

and the decoder's are ``d W_dec[u] = sum over (b, j) with S(b)_j = u of acts[b, j] d x_hat[b]`` and
``d acts[b, j] = <d x_hat[b], W_dec[S(b)_j]>``. Both functions here compute exactly these sums:

- :class:`TopKEncode` computes the pre-activations with one dense product, keeps the k largest
  per row (and optionally the ``aux_k`` largest among "dead" units, for AuxK), applies ReLU, and
  forms the gradients above by index-adding over the selected columns only: O(B·k·D) work instead
  of a second dense O(B·H·D) product.
- :class:`SparseDecode` reconstructs ``acts @ W_dec + b_dec`` touching only the k selected decoder
  rows per example (an embedding-bag sum), with an index-add backward for the decoder weights and
  gathered dot products for the activations.

Both run batched (no Python loop over rows or units) and unchanged on CPU and CUDA; neither reads a
value back to the host. The top-k goes through :mod:`sparsecode.cpu_kernels`, which runs it
faster on a CPU and as ``torch.topk`` elsewhere. :func:`dense_encode` and :func:`dense_decode` are the plain references they are checked
against (``tests/test_topk.py`` runs ``torch.autograd.gradcheck`` on both). Whether the sparse
decode beats the dense one depends on shape and device: see :func:`decode` and
``benchmarks/bench_topk.py``.
"""

from __future__ import annotations

import functools
import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .cpu_kernels import topk_select


class Encoded(NamedTuple):
    """What :class:`TopKEncode` returns."""

    acts: Tensor
    """(B, k) ReLU of the k largest pre-activations of each row (>= 0; 0 where the pre-activation was <= 0)."""
    indices: Tensor
    """(B, k) int64 unit ids of those pre-activations."""
    aux_acts: Tensor
    """(B, aux_k) ReLU of the aux_k largest pre-activations among dead units (0 for non-dead picks)."""
    aux_indices: Tensor
    """(B, aux_k) int64 unit ids of those; (B, 0) when aux_k is 0."""


def _csr(crow: Tensor, col: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's "sparse CSR is in beta" notice
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def unit_offsets(flat: Tensor, n_units: int) -> Tensor:
    """(n_units + 1,) int64: where each unit's entries begin among ``flat`` (n,) unit ids sorted by unit.

    The counts are a scatter-add into a fixed-size output, not ``torch.bincount``, which on CUDA reads
    the ids' minimum and maximum back to the host (a sync per call, even with ``minlength``); on a
    CPU the scatter-add is as fast as ``bincount``.
    """
    offsets = torch.zeros(n_units + 1, dtype=torch.int64, device=flat.device)
    offsets[1:].scatter_add_(0, flat, torch.ones_like(flat))
    return offsets.cumsum_(0)


def _outer_index_add(indices: Tensor, grads: Tensor, rows: Tensor, n_units: int) -> Tensor:
    """Sum over examples of the outer products ``grads[b, j] * rows[b]`` into unit ``indices[b, j]``.

    indices, grads: (B, m); rows: (B, D). Returns (n_units, D) contiguous, which is ``S.T @ rows``
    for the sparse (B, n_units) matrix S holding ``grads`` at ``indices``. The B·m entries, sorted by
    unit, are an embedding bag per unit over the rows: O(B·m·D) work, no (B, m, D) intermediate and
    every output row written once (a sparse-dense ``addmm`` costs 1.4-2x more on a CPU and copies its
    result once more). The sort is stable and each bag sums in order: deterministic.
    """
    B, m = indices.shape
    flat = indices.reshape(-1)
    order = torch.sort(flat, stable=True).indices
    offsets = unit_offsets(flat, n_units)
    example = order.div(m, rounding_mode="floor")  # entry b*m + j belongs to example b
    return F.embedding_bag(example, rows, offsets, mode="sum", per_sample_weights=grads.reshape(-1)[order],
                           include_last_offset=True)


def _gathered_dots(indices: Tensor, left: Tensor, table: Tensor) -> Tensor:
    """``out[b, j] = <left[b], table[indices[b, j]]>``: (B, m) from (B, m), (B, D), (H, D).

    A sampled dense-dense product over the sparsity pattern of ``indices``: O(B·m·D) work without
    gathering a (B, m, D) copy of the table. The pattern is a CSR matrix, whose column ids must
    increase within each row (cuSPARSE's SDDMM assumes it, and ``check_invariants=False`` would not
    say): rows are sorted first and the results put back in the callers' order, so any order of
    ``indices`` within a row gives the same result.
    """
    B, m = indices.shape
    cols, order = indices.sort(dim=1)
    crow = torch.arange(0, B * m + 1, m, device=indices.device)
    pattern = _csr(crow, cols.reshape(-1), left.new_zeros(B * m), (B, table.shape[0]))
    dots = torch.sparse.sampled_addmm(pattern, left, table.t(), beta=0.0).values().view(B, m)
    return torch.empty_like(dots).scatter_(1, order, dots)


def _without_autocast(backward):
    """Run a backward in its tensors' own precision. A CPU backward runs in the caller's thread, so
    an autocast around ``loss.backward()`` would cast the sparse products to bfloat16, which their
    kernels do not have; the codes are in the input's precision already (see :class:`TopKEncode`)."""

    @functools.wraps(backward)
    def run(ctx, *grads):
        device = next((g.device.type for g in grads if g is not None), "cpu")
        with torch.autocast(device, enabled=False):
            return backward(ctx, *grads)

    return run


class TopKEncode(torch.autograd.Function):
    """``relu(topk((x - shift) @ W_enc + b_enc, k))`` with a sparse backward.

    Inputs: x (B, D), W_enc (D, H), b_enc (H,), k, aux_k, dead (H,) bool or None, shift (D,) or
    None (no shift), select_bias (H,) or None. Outputs: see :class:`Encoded`. A ``select_bias`` is
    added to the pre-activations to choose the k units, and nowhere else: the activations are the
    chosen units' ``relu(pre)``, and the bias has no gradient (training moves it to balance unit use). ``aux_k`` > 0 also selects, per row, the aux_k
    largest pre-activations among units where ``dead`` is True (AuxK, Gao et al. 2024).

    ``shift`` is the decoder bias a single-layer model subtracts before encoding. Passed here rather
    than subtracted by the caller, its gradient is ``-W_enc @ grad_b_enc``, one (D, H) x (H,) product,
    where the caller's subtraction would need the gradient of every row of x: an embedding bag over
    B·k rows of W_enc, and a (B, D) sum.
    """

    @staticmethod
    def forward(ctx, x: Tensor, W_enc: Tensor, b_enc: Tensor, k: int, aux_k: int, dead: Tensor | None,
                shift: Tensor | None = None, select_bias: Tensor | None = None):
        h = x - shift if shift is not None else x
        pre_acts = torch.addmm(b_enc, h, W_enc)
        if select_bias is None:
            top_vals, top_idx = topk_select(pre_acts, k)
        else:  # the bias decides which units are chosen, not their activations
            _, top_idx = topk_select(pre_acts + select_bias, k)
            top_vals = pre_acts.gather(1, top_idx)
        acts = top_vals.clamp_min(0).to(x.dtype)  # the codes and everything after them: x's precision
        if aux_k > 0:
            masked = pre_acts.masked_fill(~dead, float("-inf"))
            _, aux_idx = topk_select(masked, aux_k)
            # Units that are not dead get picked only when fewer than aux_k are dead: zero them.
            aux_acts = torch.where(dead[aux_idx], pre_acts.gather(1, aux_idx).clamp_min(0), 0.0).to(x.dtype)
        else:
            aux_idx = top_idx.new_zeros(x.shape[0], 0)
            aux_acts = acts.new_zeros(x.shape[0], 0)
        ctx.save_for_backward(h, W_enc, acts, top_idx, aux_acts, aux_idx)
        ctx.mark_non_differentiable(top_idx, aux_idx)
        return acts, top_idx, aux_acts, aux_idx

    @staticmethod
    @_without_autocast
    def backward(ctx, grad_acts, _grad_idx, grad_aux, _grad_aux_idx):
        h, W_enc, acts, top_idx, aux_acts, aux_idx = ctx.saved_tensors
        H = W_enc.shape[1]
        # ReLU: no gradient where the activation was clamped to 0.
        g = torch.where(acts > 0, grad_acts, 0.0)
        idx = top_idx
        if aux_idx.shape[1] > 0 and grad_aux is not None:
            g = torch.cat([g, torch.where(aux_acts > 0, grad_aux, 0.0)], dim=1)
            idx = torch.cat([top_idx, aux_idx], dim=1)
        grad_x = grad_W = grad_b = grad_shift = None
        shift_grad = len(ctx.needs_input_grad) > 6 and ctx.needs_input_grad[6]
        if ctx.needs_input_grad[0]:
            # W_enc.t() is the model's (H, D) storage (see SparseAutoencoder): no copy.
            grad_x = F.embedding_bag(idx, W_enc.t().contiguous(), per_sample_weights=g, mode="sum")
        if ctx.needs_input_grad[1]:
            grad_W = _outer_index_add(idx, g, h, H).t()
        if ctx.needs_input_grad[2] or shift_grad:
            grad_b = g.new_zeros(H).index_add_(0, idx.reshape(-1), g.reshape(-1))
        if shift_grad:
            grad_shift = -(W_enc @ grad_b)  # d pre[b, u] / d shift = -W_enc[:, u], summed over the batch
        grads = (grad_x, grad_W, grad_b if ctx.needs_input_grad[2] else None, None, None, None, grad_shift, None)
        return grads[: len(ctx.needs_input_grad)]


class SparseDecode(torch.autograd.Function):
    """``acts @ W_dec[indices] + b_dec``: decode k-sparse codes touching only k decoder rows per row.

    Inputs: acts (B, k), indices (B, k) int64, W_dec (H, D), b_dec (D,). Output: (B, D).
    """

    @staticmethod
    def forward(ctx, acts: Tensor, indices: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        ctx.save_for_backward(acts, indices, W_dec)
        return F.embedding_bag(indices, W_dec, per_sample_weights=acts, mode="sum") + b_dec

    @staticmethod
    @_without_autocast
    def backward(ctx, grad_out: Tensor):
        acts, indices, W_dec = ctx.saved_tensors
        grad_acts = grad_W = grad_b = None
        if ctx.needs_input_grad[0]:
            # Gathered dot products: d out / d acts[b, j] = <grad_out[b], W_dec[indices[b, j]]>.
            grad_acts = _gathered_dots(indices, grad_out, W_dec)
        if ctx.needs_input_grad[2]:
            grad_W = _outer_index_add(indices, acts, grad_out, W_dec.shape[0])
        if ctx.needs_input_grad[3]:
            grad_b = grad_out.sum(0)
        return grad_acts, None, grad_W, grad_b


def dense_encode(x: Tensor, W_enc: Tensor, b_enc: Tensor, k: int,
                 select_bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Reference for :class:`TopKEncode` (no aux): plain autograd through ``torch.topk`` (of
    ``pre + select_bias`` with a selection bias, the activations then ``relu(pre)`` there)."""
    pre = x @ W_enc + b_enc
    if select_bias is None:
        vals, idx = torch.topk(pre, k, dim=1)
    else:
        idx = torch.topk(pre.detach() + select_bias, k, dim=1).indices
        vals = pre.gather(1, idx)
    return vals.clamp_min(0), idx


def dense_decode(acts: Tensor, indices: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
    """Reference for :class:`SparseDecode`: scatter the codes into a dense (B, H) matrix, multiply."""
    dense = acts.new_zeros(acts.shape[0], W_dec.shape[0]).scatter(1, indices, acts)
    return dense @ W_dec + b_dec


def sparse_decode_wins(n_units: int, device: torch.device) -> bool:
    """Whether :class:`SparseDecode` is expected to beat :func:`dense_decode` in a training step.

    Measured with ``benchmarks/bench_topk.py`` on the 2-core development machines (batch 1024,
    D=50): the two are within 5% of each other up to H=200, and the sparse one wins from H=500 on
    (1.57x the dense step at H=1000, 2.98x at D=300, H=3000). Not measured on CUDA here: there the
    sparse path is used since it does O(k) instead of O(H) work per row with cuSPARSE kernels.
    """
    if device.type == "cuda":
        return True
    return n_units >= CPU_SPARSE_DECODE_MIN_UNITS


#: Smallest H at which the sparse decode is used on a CPU (see :func:`sparse_decode_wins`).
CPU_SPARSE_DECODE_MIN_UNITS = 500


def decode(acts: Tensor, indices: Tensor, W_dec: Tensor, b_dec: Tensor, impl: str = "auto") -> Tensor:
    """Decode k-sparse codes; ``impl`` is ``"sparse"``, ``"dense"`` or ``"auto"`` (by shape and device)."""
    if impl == "auto":
        impl = "sparse" if sparse_decode_wins(W_dec.shape[0], W_dec.device) else "dense"
    if impl == "sparse":
        return SparseDecode.apply(acts, indices, W_dec, b_dec)
    return dense_decode(acts, indices, W_dec, b_dec)


def topk_encode(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, k: int, aux_k: int = 0, dead: Tensor | None = None,
    shift: Tensor | None = None, select_bias: Tensor | None = None,
) -> Encoded:
    """Functional form of :class:`TopKEncode`."""
    return Encoded(*TopKEncode.apply(x, W_enc, b_enc, k, aux_k, dead, shift, select_bias))
