"""How good and how healthy a model's codes are: reconstruction and sparsity statistics.

FVU is the fraction of variance unexplained, sum ||x - x_hat||^2 / sum ||x - mean(x)||^2, with the
variance taken about the data mean on the original scale. Codes come from the model's encoder or
from pursuit over its decoder (``method``, see :mod:`sparsecode.pursuit`).
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from .model import SparseAutoencoder
from .pursuit import make_coder


@torch.no_grad()
def code_statistics(
    model: SparseAutoencoder, vectors: Tensor, k: int, batch_size: int = 8192, method: str = "encoder",
    nonneg: bool = False,
) -> dict:
    """Encode every row of ``vectors`` (N, D, original scale, on the model's device) with ``k``
    active units, by the encoder or by pursuit (``method`` "encoder" or "omp", ``nonneg`` for
    non-negative pursuit) and report: ``fvu``, ``cosine`` (mean cosine of x and x_hat), ``mean_l0``,
    ``dead_fraction`` (units no row uses), ``always_on_fraction`` (units used by more than half
    the rows) and ``zero_rows_fraction`` (rows whose code is all zeros)."""
    n, _ = vectors.shape
    mean = vectors.double().mean(0).to(vectors.dtype)
    H = model.n_hidden
    sse = vectors.new_zeros((), dtype=torch.float64)
    ssd = torch.zeros_like(sse)
    cos_sum = torch.zeros_like(sse)
    l0 = torch.zeros_like(sse)
    zero_rows = torch.zeros_like(sse)
    usage = vectors.new_zeros(H)
    coder = make_coder(model, method, nonneg)
    for start in range(0, n, batch_size):
        x = vectors[start : start + batch_size]
        enc = coder.encode(x, k)
        x_hat = model.decode(enc.acts, enc.indices)
        sse += (x - x_hat).double().pow(2).sum()
        ssd += (x - mean).double().pow(2).sum()
        cos_sum += torch.nn.functional.cosine_similarity(x, x_hat, dim=1).double().sum()
        active = enc.acts != 0
        row_l0 = active.sum(1)
        l0 += row_l0.sum()
        zero_rows += (row_l0 == 0).sum()
        usage.index_add_(0, enc.indices.reshape(-1), active.reshape(-1).to(usage.dtype))
    return {
        "fvu": float(sse / ssd.clamp_min(1e-300)),
        "cosine": float(cos_sum / n),
        "mean_l0": float(l0 / n),
        "dead_fraction": float((usage == 0).double().mean()),
        "always_on_fraction": float((usage > n / 2).double().mean()),
        "zero_rows_fraction": float(zero_rows / n),
    }


#: The codes :func:`compare_methods` measures: name -> (method, nonneg).
COMPARED_METHODS = {"encoder": ("encoder", False), "omp": ("omp", False), "omp_nonneg": ("omp", True)}


def compare_methods(model: SparseAutoencoder, vectors: Tensor, k: int, batch_size: int = 8192) -> dict[str, dict]:
    """:func:`code_statistics` of the same vectors and k for the encoder, OMP and non-negative OMP,
    side by side: ``{"encoder": {...}, "omp": {...}, "omp_nonneg": {...}}``, each with ``seconds``
    (wall-clock time of encoding and measuring) added."""
    results = {}
    for name, (method, nonneg) in COMPARED_METHODS.items():
        start = time.perf_counter()
        stats = code_statistics(model, vectors, k, batch_size, method=method, nonneg=nonneg)
        if vectors.device.type == "cuda":
            torch.cuda.synchronize(vectors.device)
        results[name] = {**stats, "seconds": time.perf_counter() - start}
    return results
