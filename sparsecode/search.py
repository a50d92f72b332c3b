"""Nearest words in code space.

Cosine similarity between sparse codes, over the whole vocabulary at once: the (N, H) code
matrix, its rows scaled to unit norm, times a dense (H, Q) block of query codes, a single
sparse-dense product for all queries. The query word itself is excluded (gensim's
``most_similar`` convention). Words whose code is all zeros have no direction; they score 0.
"""

from __future__ import annotations

import numpy as np
import torch

from .codes import Codes, csr_tensor
from .errors import SparsecodeError, need

#: Neighbours returned per query word.
DEFAULT_TOP = 10


class CodeIndex:
    """Row-normalised codes, ready for repeated queries."""

    def __init__(self, codes: Codes, device: str | torch.device = "cpu"):
        self.codes = codes
        row_of_entry = np.repeat(np.arange(len(codes.words)), codes.l0())
        norms = np.sqrt(np.bincount(row_of_entry, weights=codes.data.astype(np.float64) ** 2, minlength=len(codes.words)))
        data = codes.data / np.where(norms > 0, norms, 1.0)[row_of_entry].astype(np.float32)
        self.norms = norms
        self.matrix = csr_tensor(codes.indptr, codes.indices, data, codes.shape, device)

    def query_matrix(self, rows: list[int]) -> torch.Tensor:
        """Dense (H, Q) unit-norm codes of the given rows."""
        q = torch.from_numpy(self.codes.dense(np.asarray(rows, dtype=np.int64)))
        q = q / torch.from_numpy(self.norms[rows]).float().unsqueeze(1)
        return q.t().contiguous().to(self.matrix.device)

    def neighbors(self, words: list[str], top: int = DEFAULT_TOP) -> dict[str, list[tuple[str, float]]]:
        """For each query word, its ``top`` nearest other words as ``(word, cosine)``, best first."""
        need(top >= 1, "top", "{top} must be at least 1 (got {got})", got=top)
        rows = [self.codes.index_of(w) for w in words]
        for w, r in zip(words, rows):
            if self.norms[r] == 0:
                raise SparsecodeError(f"{self.codes.path or 'codes'}: word {w!r} has an all-zero code, so it has no neighbours")
        n = len(self.codes.words)
        top = min(top, n - 1)
        scores = (self.matrix @ self.query_matrix(rows)).t()  # (Q, N)
        scores[torch.arange(len(rows)), torch.tensor(rows)] = float("-inf")
        vals, idx = scores.topk(top, dim=1)
        vals, idx = vals.cpu().numpy(), idx.cpu().numpy()
        return {
            w: [(self.codes.words[j], float(v)) for j, v in zip(idx[q], vals[q])] for q, w in enumerate(words)
        }


def neighbors(codes: Codes, words: str | list[str], top: int = DEFAULT_TOP) -> dict[str, list[tuple[str, float]]]:
    """Nearest words by cosine in code space; see :meth:`CodeIndex.neighbors`."""
    if isinstance(words, str):
        words = [words]
    return CodeIndex(codes).neighbors(words, top)
