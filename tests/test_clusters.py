"""k-means clusters of the words as codes: exact on hand-made vectors, measured as units are."""

from __future__ import annotations

import numpy as np
import pytest

from sparsecode.clusters import cluster_measures, kmeans_codes, spherical_clusters
from sparsecode.errors import SparsecodeError
from sparsecode.evaluate import unit_table
from sparsecode.interpret import coherence

#: Three words along x, three along y (scaled: spherical k-means reads directions only), one far off.
WORDS = ["x1", "x2", "x3", "y1", "y2", "y3", "late"]
VECTORS = np.array([[1.0, 0.1], [5.0, 0.0], [2.0, 0.6], [0.0, 3.0], [0.2, 1.0], [-0.1, 2.0], [1.0, 1.0]])


def test_two_directions_make_two_clusters_with_their_nearest_words_on_top():
    codes = kmeans_codes(WORDS, VECTORS, 2, seed=0, limit=6)
    assert codes.words == WORDS[:6] and codes.n_units == 2  # only the first `limit` words are clustered
    np.testing.assert_array_equal(codes.indptr, np.arange(7))  # one active unit per word
    x_unit = int(codes.indices[0])
    np.testing.assert_array_equal(codes.indices, [x_unit] * 3 + [1 - x_unit] * 3)
    np.testing.assert_array_equal(codes.frequency[[x_unit, 1 - x_unit]], [3, 3])
    # The centroid of x1..x3 is their normalised sum of directions; the values are cosines with it.
    d = VECTORS[:3] / np.linalg.norm(VECTORS[:3], axis=1, keepdims=True)
    centre = d.sum(0) / np.linalg.norm(d.sum(0))
    np.testing.assert_allclose(codes.data[:3], d @ centre, rtol=1e-6)
    assert [w for w, _ in codes.top_words(x_unit)] == ["x1", "x2", "x3"]  # x1 lies nearest the centre
    assert [w for w, _ in codes.top_words(1 - x_unit)] == ["y1", "y3", "y2"]
    assert [r["top_words"] for r in unit_table(codes)][x_unit] == ["x1", "x2", "x3"]


def test_seeded_and_checked():
    a = spherical_clusters(VECTORS, 3, seed=4)
    b = spherical_clusters(VECTORS, 3, seed=4)
    for left, right in zip(a, b):
        np.testing.assert_array_equal(left, right)
    np.testing.assert_allclose(np.linalg.norm(a[0], axis=1), 1.0, rtol=1e-6)
    with pytest.raises(SparsecodeError, match="n_clusters"):
        kmeans_codes(WORDS, VECTORS, 8)


def test_clusters_are_measured_as_units_are(sample):
    codes = kmeans_codes(sample.words, sample.vectors, 100, seed=0)
    assert codes.frequency.sum() == len(sample.words) == len(codes.words)
    summary = coherence(codes.words, codes.indptr, codes.indices, codes.data, codes.n_units).summary()
    assert 0 < summary["strict_purity"] <= summary["purity"] <= 1
    assert 0 <= summary["non_words"] < 0.5 and summary["units_measured"] > 50


def test_baselines_take_no_more_clusters_than_words(tmp_path, sample):
    """Codes of more units than words: evaluate's k-means baseline (and intrusion's) clusters every
    word, one per cluster, instead of refusing (there is no setting to change it)."""
    from sparsecode.clusters import as_many_clusters_as

    assert as_many_clusters_as(1000, 500) == 500 and as_many_clusters_as(1000, 400_000) == 1000
    assert as_many_clusters_as(80_000, 400_000) == 50_000
    words, vectors = sample.words[:40], sample.vectors[:40]
    measured = cluster_measures(words, vectors, as_many_clusters_as(100, len(words)), seed=0)
    assert measured["clusters"] == 40
