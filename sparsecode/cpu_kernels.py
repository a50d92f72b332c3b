"""CPU fast paths of the top-k core, each behind a function that gives the plain torch op's result.

:mod:`sparsecode.topk` calls four functions here without looking at devices:

- :func:`topk_select`: the k largest values of each row (``torch.topk``);
- :func:`pre_activations`: the encoder's dense product ``addmm(b, h, W)``;
- :func:`unit_order`: a stable sort of unit ids (``torch.sort(stable=True)``);
- :func:`row_order`: the permutation that sorts each row of indices (``sort(dim=1)``).

On CUDA (and any device but the CPU) each is that torch op. On a CPU each has a kernel that the
2-core development machines run several times faster (numpy's partition, argsort and radix sort,
and a pre-activation buffer kept between calls); their docstrings say what each saves.
``tests/test_cpu_kernels.py`` checks every kernel against its torch op. :data:`ENABLED` False runs
the torch ops on the CPU too: the code path CUDA takes, which the tests check on a CPU.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: Whether the CPU kernels are used on a CPU; False: the plain torch ops, as on CUDA.
ENABLED = True


def _cpu(t: Tensor) -> bool:
    """Whether ``t`` is on the CPU and the CPU kernels are on."""
    return ENABLED and t.device.type == "cpu"


# -- top-k selection ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _block_size(n: int, k: int) -> int:
    """Block size S for :func:`topk_select` over rows of ``n`` values, or 0 for plain ``torch.topk``.

    S divides n and leaves at least k blocks; it minimises the values partitioned per row, n/S block
    maxima plus k·S candidates, and is used only when that is at most half of n.
    """
    best_cost, best = n // 2 + 1, 0
    for size in range(2, n // max(k, 1) + 1):
        if n % size == 0 and n // size + k * size < best_cost:
            best_cost, best = n // size + k * size, size
    return best


def _top_columns(a: Tensor, k: int) -> Tensor:
    """(B, n) CPU float -> (B, k) int64 column ids of each row's k largest values (NaN counts as largest).

    numpy's partition finds each row's k-th largest value (vectorised selection, several times faster
    than ``torch.topk`` on a CPU); the columns at or above it are read off in increasing order. Ties
    at the k-th value (more than k columns qualify) and NaN (which ``>=`` does not count) fall back
    to numpy's argpartition.
    """
    n = a.shape[1]
    values = a.numpy()
    kth = torch.from_numpy(np.partition(values, n - k, axis=1)[:, n - k : n - k + 1])
    hits = (a >= kth).nonzero()  # (row, column) pairs, row-major
    rows = torch.arange(a.shape[0]).repeat_interleave(k)
    if hits.shape[0] == rows.shape[0] and torch.equal(hits[:, 0], rows):  # exactly k in every row
        return hits[:, 1].view(-1, k)
    return torch.from_numpy(np.argpartition(values, n - k, axis=1)[:, n - k :])


def topk_select(pre_acts: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k largest values of each row of (B, H) ``pre_acts`` and their column ids, both (B, k).

    The same selection as ``pre_acts.topk(k, dim=1, sorted=False)`` (ties may pick other columns of
    equal value; the order within a row is unspecified), which it is on CUDA. On the CPU ``torch.topk``
    costs about half of the encoder's matrix product, so rows are cut into H/S blocks of S values:
    the k blocks with the largest maxima hold the k largest values (any other block's values are at
    most the smallest of those k maxima, k distinct values), so only the block maxima and the k·S
    values of those blocks are partitioned. The columns come out increasing within each row.
    """
    B, H = pre_acts.shape
    size = _block_size(H, k) if _cpu(pre_acts) else 0
    if size == 0 or B == 0 or k < 1 or pre_acts.dtype not in (torch.float32, torch.float64):
        return pre_acts.topk(k, dim=1, sorted=False)
    pre_acts = pre_acts.detach().contiguous()
    n_blocks = H // size
    block_max = F.max_pool1d(pre_acts.unsqueeze(1), size).squeeze(1)  # (B, H/S)
    blocks = _top_columns(block_max, k)  # (B, k) block ids
    rows = torch.arange(0, B * n_blocks, n_blocks).unsqueeze(1)
    cand = F.embedding((rows + blocks).view(-1), pre_acts.view(B * n_blocks, size)).view(B, k * size)
    pos = _top_columns(cand, k)  # (B, k) positions among the candidates
    block_of = torch.arange(k * size).div_(size, rounding_mode="floor")[pos]
    return cand.gather(1, pos), blocks.gather(1, block_of) * size + (pos - block_of * size)


# -- sorts ---------------------------------------------------------------------------------------------
#: Largest number of units whose entries :func:`unit_order` sorts by radix (as 16-bit keys) on a CPU.
RADIX_SORT_MAX_UNITS = 1 << 16


def unit_order(flat: Tensor, n_units: int) -> Tensor:
    """The positions of ``flat`` (n,) unit ids below ``n_units`` sorted by unit, stably: (n,) int64.

    ``torch.sort(flat, stable=True).indices``. On a CPU, with at most 65,536 units, numpy's stable
    argsort of 16-bit keys, which is a radix sort: 4 to 15 times faster than ``torch.sort`` for the
    8k-130k entries of a training step.
    """
    if _cpu(flat) and n_units <= RADIX_SORT_MAX_UNITS:
        keys = flat.numpy().astype(np.uint16)  # unit ids < 65,536: exact
        return torch.from_numpy(np.argsort(keys, kind="stable").astype(np.int64))
    return torch.sort(flat, stable=True).indices


def row_order(indices: Tensor) -> Tensor | None:
    """The permutation that sorts each row of (B, m) ``indices`` increasingly, or None when they are.

    On CUDA always a sort (small next to the step, and no host read). On a CPU the top-k comes out
    sorted by column already (see :func:`topk_select`): a vectorised check spares the sort, and
    numpy's argsort of the rows, when they are not, costs a sixth of ``torch.sort``'s.
    """
    if not _cpu(indices):
        return indices.sort(dim=1).indices
    if indices.shape[1] < 2 or bool((indices[:, 1:] > indices[:, :-1]).all()):
        return None
    return torch.from_numpy(np.argsort(indices.numpy(), axis=1, kind="stable"))


# -- the pre-activation workspace --------------------------------------------------------------------
#: The CPU output buffers of :func:`pre_activations` and :func:`biased`, kept between calls, one per thread, name and dtype.
_CPU_WORKSPACE = threading.local()
#: Pre-activations larger than this are not kept (a fresh output is then page-faulted in per call).
MAX_WORKSPACE_BYTES = 512 << 20


def release_workspace() -> None:
    """Free this thread's kept pre-activation buffers."""
    _CPU_WORKSPACE.__dict__.pop("buffers", None)


@contextlib.contextmanager
def kept_workspace() -> Iterator[None]:
    """Keep the pre-activation buffer for the block, then free it (``train`` and ``encode`` run in one)."""
    try:
        yield
    finally:
        release_workspace()


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4: no device argument
        return torch.is_autocast_cpu_enabled()


def pre_activations(b_enc: Tensor, h: Tensor, W_enc: Tensor) -> Tensor:
    """``addmm(b_enc, h, W_enc)``, (B, H); on a CPU written into a buffer kept between calls.

    The pre-activations are a temporary of the forward pass (neither returned nor saved for the
    backward). Above 32 MiB (B=4096, H=4096: 64 MiB) glibc maps every fresh one anew and page-faults
    it in: 20-30% of the product's time. The plain product is used under autocast (its own output
    dtype), in inference mode (its tensors cannot be written outside it later), beyond
    :data:`MAX_WORKSPACE_BYTES`, and on CUDA (whose caching allocator reuses blocks already).
    """
    out = _kept("pre_activations", (h.shape[0], W_enc.shape[1]), h, h.dtype == W_enc.dtype)
    return torch.addmm(b_enc, h, W_enc) if out is None else torch.addmm(b_enc, h, W_enc, out=out)


def biased(pre: Tensor, bias: Tensor) -> Tensor:
    """``pre + bias`` (B, H), the pre-activations a selection bias chooses units by: a temporary of
    the forward pass, kept between calls on a CPU as :func:`pre_activations`' output is."""
    out = _kept("biased", tuple(pre.shape), pre, pre.dtype == bias.dtype)
    return pre + bias if out is None else torch.add(pre, bias, out=out)


def _kept(name: str, shape: tuple[int, int], like: Tensor, same_dtype: bool) -> Tensor | None:
    """This thread's kept buffer ``name`` as a (shape) tensor of ``like``'s dtype, or None where a
    kept buffer does not apply (off the CPU, under autocast or inference mode, mixed dtypes, or
    beyond :data:`MAX_WORKSPACE_BYTES`): the caller then lets the operation allocate."""
    numel = shape[0] * shape[1]
    if (not _cpu(like) or _cpu_autocast() or torch.is_inference_mode_enabled() or not same_dtype
            or numel * like.element_size() > MAX_WORKSPACE_BYTES):
        return None
    buffers = _CPU_WORKSPACE.__dict__.setdefault("buffers", {})
    buf = buffers.get((name, like.dtype))
    if buf is None or buf.numel() < numel:
        buf = buffers[(name, like.dtype)] = torch.empty(numel, dtype=like.dtype, device="cpu")
    return buf[:numel].view(shape)
