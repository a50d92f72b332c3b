"""Nearest neighbours in code space."""

from __future__ import annotations

import numpy as np
import pytest

import sparsecode as sc
from sparsecode.codes import close_words


def _brute_force(codes, word, top):
    dense = codes.dense().astype(np.float64)
    norms = np.linalg.norm(dense, axis=1)
    q = dense[codes.index_of(word)]
    cos = dense @ q / np.where(norms > 0, norms, 1) / np.linalg.norm(q)
    cos[codes.index_of(word)] = -np.inf
    order = np.argsort(-cos, kind="stable")[:top]
    return [codes.words[i] for i in order], cos[order]


def test_neighbors_equal_brute_force_cosine_and_exclude_the_query(codes):
    result = sc.neighbors(codes, ["king", "france", "three"], top=8)
    assert list(result) == ["king", "france", "three"]
    for word, got in result.items():
        want_words, want_cos = _brute_force(codes, word, 8)
        assert word not in [w for w, _ in got]
        np.testing.assert_allclose([c for _, c in got], want_cos, rtol=1e-5, atol=1e-6)
        # Same set of words (ties in cosine could reorder neighbours with equal scores).
        assert {w for w, _ in got} == set(want_words)


def test_neighbors_are_meaningful_on_real_glove(codes):
    nbrs = [w for w, _ in sc.neighbors(codes, "monday", top=10)["monday"]]
    assert len({"tuesday", "wednesday", "thursday", "friday", "sunday", "saturday"} & set(nbrs)) >= 3


def test_unknown_word_suggests_close_spellings(codes):
    with pytest.raises(sc.UnknownWordError, match=r"word 'kingg' is not in the vocabulary; did you mean 'king'") as exc:
        sc.neighbors(codes, "kingg")
    assert isinstance(exc.value, KeyError)
    assert close_words("King", codes.words)[0] == "king"


def test_top_must_be_positive(codes):
    with pytest.raises(sc.SparsecodeError, match="^top must be at least 1"):
        sc.neighbors(codes, "king", top=0)
