"""Word-vector-like synthetic data for the benchmarks: a few strong directions plus noise, float32.

Every benchmark that needs a vocabulary of a given size draws it here, in blocks of 100,000 rows
so that temporary memory stays bounded for millions of rows: in memory (:func:`synthetic`) or
written to an embeddings file (:func:`write_synthetic`). Words are ``w0``, ``w1``, ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from sparsecode.embeddings import Embeddings

BLOCK_ROWS = 100_000


def blocks(n: int, d: int, seed: int = 0) -> Iterator[np.ndarray]:
    """The n rows of the data set, (m, d) float32 blocks of at most BLOCK_ROWS rows, in order."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((d // 4 + 1, d), dtype=np.float32)
    for start in range(0, n, BLOCK_ROWS):
        m = min(BLOCK_ROWS, n - start)
        block = rng.standard_normal((m, d // 4 + 1), dtype=np.float32) @ basis
        block += 0.5 * rng.standard_normal((m, d), dtype=np.float32)
        yield block


def words(n: int) -> list[str]:
    return [f"w{i}" for i in range(n)]


def synthetic(n: int, d: int, seed: int = 0) -> Embeddings:
    """The data set in memory."""
    vectors = np.empty((n, d), dtype=np.float32)
    start = 0
    for block in blocks(n, d, seed):
        vectors[start : start + len(block)] = block
        start += len(block)
    return Embeddings(words(n), vectors, "synthetic")


def write_synthetic(path: Path, n: int, d: int, seed: int = 0) -> None:
    """The data set as an embeddings file (``words``, ``vectors``), written a block at a time."""
    with h5py.File(path, "w") as f:
        f.create_dataset("words", data=np.array(words(n), dtype=object), dtype=h5py.string_dtype("utf-8"))
        vec = f.create_dataset("vectors", shape=(n, d), dtype=np.float32)
        start = 0
        for block in blocks(n, d, seed):
            vec[start : start + len(block)] = block
            start += len(block)
