"""The CPU fast path of the top-k core: :func:`topk_select`, the k largest values of each row.

On CUDA (and any device but the CPU) it is ``torch.topk``. On a CPU it finds them from block maxima
and numpy's partition, which saves more than 15% of a whole ``sparsecode encode`` at 50 and 300
dimensions (``benchmarks/bench_fastpaths.py``). The other hand-made CPU kernels (radix and row
argsorts, kept pre-activation buffers) saved less than that and gave way to the torch ops.
``tests/test_cpu_kernels.py`` checks it against ``torch.topk``. :data:`ENABLED` False runs the
torch op on the CPU too: the code path CUDA takes, which the tests check on a CPU.
"""

from __future__ import annotations

import functools

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
