"""k-means clusters of the words, as codes: the baseline a reader compares units with.

:func:`kmeans_codes` clusters the first FREQUENT_WORDS words (those whose top words the measures
read) by spherical k-means (cosine; :func:`sparsecode.model.spherical_kmeans`, the same k-means as
the decoder's k-means start), from distinct words drawn with ``seed``, and gives every word one
active unit, its cluster, valued by its cosine with the cluster's centroid. A cluster's top words
are then its words nearest its centroid, and every measure of codes (purity, strict purity,
non-words, :func:`sparsecode.evaluate.unit_table`) reads clusters as it reads units.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .codes import Codes, CodesBuffer
from .errors import need
from .interpret import FREQUENT_WORDS, Lexicon, UnitMeasures, lexicon, ranked_rows_of_codes
from .model import spherical_kmeans
from .report import UnitSummary

#: Rounds of k-means: on GloVe 50k at H=1000 the measures of the clusters move by less than 0.005 from 10 to 40.
KMEANS_ITERS = 10
#: Rows whose cosines with the centres are taken at a time (bounds the (rows, clusters) matrix).
CHUNK = 8192


@torch.no_grad()
def spherical_clusters(vectors: np.ndarray, n_clusters: int, seed: int = 0,
                       iters: int = KMEANS_ITERS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spherical k-means of the rows of ``vectors`` (N, D): (K, D) unit centroids, (N,) each row's
    cluster and (N,) its cosine with that centroid. The start is ``n_clusters`` distinct rows drawn
    with ``seed``; a cluster that loses every row keeps its centroid."""
    x = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    directions = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n_clusters]
    centres = spherical_kmeans(directions, directions[pick], iters)
    cosine = torch.empty(len(x))
    assign = torch.empty(len(x), dtype=torch.int64)
    for start in range(0, len(x), CHUNK):
        best = (directions[start : start + CHUNK] @ centres.t()).max(1)
        cosine[start : start + CHUNK], assign[start : start + CHUNK] = best.values, best.indices
    return centres.numpy(), assign.numpy(), cosine.numpy()


def kmeans_codes(words: list[str], vectors: np.ndarray, n_clusters: int, seed: int = 0, iters: int = KMEANS_ITERS,
                 limit: int = FREQUENT_WORDS, top_words: int = 10) -> Codes:
    """Codes of the first ``limit`` words (N, D ``vectors`` of ``words``) that are their
    :func:`spherical_clusters`: one unit per cluster, each word active on its own cluster only,
    with its cosine to the centroid (clamped above 0, as codes hold positive values); the units'
    ``top_words`` are the words nearest each centroid."""
    n = min(limit, len(words))
    need(1 <= n_clusters <= n, "n_clusters", "{n_clusters} must be between 1 and the {n} words clustered (got {got})",
         n=n, got=n_clusters)
    _, assign, cosine = spherical_clusters(vectors[:n], n_clusters, seed, iters)
    indptr = np.arange(n + 1, dtype=np.int64)
    indices, data = assign.astype(np.int32), np.maximum(cosine, np.finfo(np.float32).tiny).astype(np.float32)
    top_rows = ranked_rows_of_codes(indptr, indices, data, n_clusters, n, top=top_words)
    top_values = np.where(top_rows >= 0, data[np.maximum(top_rows, 0)], 0).astype(np.float32)
    buffer = CodesBuffer(n, n_clusters)
    buffer.add_rows(0, np.ones(n, dtype=np.int64), indices, data)
    units = UnitSummary(top_rows, top_values, np.bincount(assign, minlength=n_clusters).astype(np.int64))
    return buffer.finish(list(words[:n]), units, {"kmeans_clusters": n_clusters, "kmeans_seed": seed,
                                                  "kmeans_iters": iters})


def as_many_clusters_as(n_units: int, n_words: int) -> int:
    """The clusters a baseline of ``n_units`` units takes on ``n_words`` words: as many as the units,
    at most the words :func:`kmeans_codes` clusters (the first FREQUENT_WORDS)."""
    return min(n_units, n_words, FREQUENT_WORDS)


def cluster_measures(words: list[str], vectors: np.ndarray, n_clusters: int, seed: int = 0,
                     lex: Lexicon | None = None) -> dict:
    """What a reader sees of :func:`kmeans_codes` of ``words``: :meth:`~sparsecode.interpret.UnitMeasures.summary`
    of the clusters, with ``clusters`` and ``seconds`` (clustering and measuring). ``lex``: the
    :func:`~sparsecode.interpret.lexicon` of ``words``, when at hand."""
    start = time.perf_counter()
    codes = kmeans_codes(words, vectors, n_clusters, seed)
    lex = lexicon(words) if lex is None else lex
    ranked = ranked_rows_of_codes(codes.indptr, codes.indices, codes.data, n_clusters, len(lex.senses))
    summary = UnitMeasures.of_rankings(ranked, lex, codes.frequency).summary()
    return {**summary, "clusters": n_clusters, "seconds": time.perf_counter() - start}
