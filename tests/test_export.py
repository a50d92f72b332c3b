"""Exporting codes and reading them back with the tools people use: gensim, scipy, numpy, sparsecode."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse
from gensim.models import KeyedVectors

import sparsecode as sc
from sparsecode.convert import convert_embeddings
from sparsecode.export import export_codes

from .conftest import SAMPLE


@pytest.fixture(scope="module")
def dense(codes) -> np.ndarray:
    return codes.dense()


@pytest.mark.parametrize("name", ["codes.txt", "codes.vec.gz"])
def test_word2vec_text_loads_in_gensim_exactly(tmp_path, codes_path, codes, dense, name):
    summary = export_codes(codes_path, tmp_path / name)
    assert summary == {"out": str(tmp_path / name), "format": "word2vec", "words": 5000, "units": 200, "nnz": codes.nnz}
    kv = KeyedVectors.load_word2vec_format(tmp_path / name)
    assert kv.index_to_key == codes.words
    np.testing.assert_array_equal(kv.vectors, dense)
    # sparsecode reads its own export too, through the converter.
    convert_embeddings(tmp_path / name, tmp_path / "back.h5")
    back = sc.load_embeddings(tmp_path / "back.h5")
    assert back.words == codes.words
    np.testing.assert_array_equal(back.vectors, dense)


def test_npz_is_scipy_csr_plus_words(tmp_path, codes_path, codes, dense):
    export_codes(codes_path, tmp_path / "codes.npz")
    matrix = scipy.sparse.load_npz(tmp_path / "codes.npz")
    assert matrix.format == "csr" and matrix.shape == (5000, 200)
    np.testing.assert_array_equal(matrix.indptr, codes.indptr)
    np.testing.assert_array_equal(matrix.indices, codes.indices)
    np.testing.assert_array_equal(matrix.data, codes.data)
    np.testing.assert_array_equal(matrix.toarray(), dense)
    with np.load(tmp_path / "codes.npz", allow_pickle=False) as z:
        assert z["words"].tolist() == codes.words


def test_dense_h5_is_an_embeddings_file(tmp_path, codes_path, codes, dense, monkeypatch):
    monkeypatch.setattr("sparsecode.export.BLOCK_BYTES", 200 * 4 * 700)  # blocks of 700 rows
    export_codes(codes_path, tmp_path / "dense.h5")
    emb = sc.load_embeddings(tmp_path / "dense.h5")
    assert emb.words == codes.words
    np.testing.assert_array_equal(emb.vectors, dense)


def test_codes_object_and_explicit_format(tmp_path, codes, dense):
    export_codes(codes, tmp_path / "codes.data", format="dense-h5")
    np.testing.assert_array_equal(sc.load_embeddings(tmp_path / "codes.data").vectors, dense)


def test_export_errors(tmp_path, codes_path, codes):
    def error(*needles, codes_arg=codes_path, **kwargs):
        with pytest.raises(sc.SparsecodeError) as exc:
            export_codes(codes_arg, **kwargs)
        msg = str(exc.value)
        assert "\n" not in msg
        for needle in needles:
            assert needle in msg

    error("cannot tell the format from the name; pass format", out=tmp_path / "codes.csv")
    error("format must be one of", out=tmp_path / "c.txt", format="parquet")
    spaced = dataclasses.replace(codes, words=["new york", *codes.words[1:]])
    error("1 word(s) are empty or hold a space", "'new york'", "use format npz or dense-h5",
          codes_arg=spaced, out=tmp_path / "c.txt")
    error("missing.h5: file not found", codes_arg=tmp_path / "missing.h5", out=tmp_path / "c.npz")
    error("not a sparsecode codes file", "create one with 'sparsecode encode'", codes_arg=SAMPLE, out=tmp_path / "c.npz")
    (tmp_path / "taken.npz").write_text("x")
    error("already exists; pass force=True", out=tmp_path / "taken.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.npz"]  # nothing else left behind
