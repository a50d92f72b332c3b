"""The Codes object: its CSR arrays seen as numpy, torch and scipy, and its per-word and per-unit views."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import sparsecode as sc


def test_csr_arrays_and_their_torch_and_scipy_views_agree(codes):
    dense = codes.dense()
    assert (codes.indptr.dtype, codes.indices.dtype, codes.data.dtype) == (np.int64, np.int32, np.float32)
    assert dense.shape == codes.shape == (5000, 200)
    assert np.count_nonzero(dense) == codes.nnz
    np.testing.assert_array_equal(codes.to_torch().to_dense().numpy(), dense)
    matrix = codes.to_scipy()
    assert matrix.format == "csr"
    np.testing.assert_array_equal(matrix.toarray(), dense)


def test_active_units_and_top_words_read_the_same_arrays(codes):
    dense = codes.dense()
    row = codes.index_of("france")
    units = codes.active_units("france")
    assert sorted(u for u, _ in units) == np.flatnonzero(dense[row]).tolist()
    assert [v for _, v in units] == sorted((float(dense[row, u]) for u, _ in units), reverse=True)
    unit = units[0][0]
    column = dense[:, unit]
    top = codes.top_words(unit)
    assert [v for _, v in top] == sorted(column[column > 0].tolist(), reverse=True)[: len(top)]
    assert top[0][0] == codes.words[int(np.argmax(column))]


def test_to_scipy_without_scipy_names_the_fix(codes, monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)
    with pytest.raises(sc.SparsecodeError, match="needs scipy, which is not installed; pip install scipy"):
        codes.to_scipy()
