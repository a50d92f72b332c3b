"""sc.SparseCoder: fit, transform, inverse_transform, save/load on the CLI's run directory."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse
import torch
from typer.testing import CliRunner

import sparsecode as sc
from sparsecode.cli import app
from sparsecode.rundir import RUN_FILES

from .conftest import SAMPLE

SETTINGS = dict(hidden=100, k=6, epochs=1, device="cpu")


@pytest.fixture(scope="module")
def fitted(sample):
    seen = []
    coder = sc.SparseCoder(**SETTINGS).fit(sample.vectors, progress=seen.append)
    return coder, seen


def test_fit_is_sc_train_with_the_same_settings(fitted, sample):
    coder, seen = fitted
    reference = sc.train(sample, sc.TrainConfig(**SETTINGS))
    for name, tensor in reference.model.weights().items():
        assert torch.equal(coder.model_.weights()[name], tensor), name
    assert coder.metrics_ == [{**m, "seconds": coder.metrics_[i]["seconds"]} for i, m in enumerate(reference.metrics)]
    assert seen[-1].epoch_end and seen[-1].step == seen[-1].total_steps == 20  # the progress callback, as sc.train's
    assert coder.get_params() == {**sc.TrainConfig().to_dict(), **SETTINGS}
    assert repr(coder) == "SparseCoder(hidden=100, k=6, epochs=1, device='cpu')"


def test_transform_and_inverse_transform(fitted, sample, monkeypatch):
    coder, _ = fitted
    X = sample.vectors
    Z = coder.transform(X)
    assert isinstance(Z, scipy.sparse.csr_matrix) and Z.shape == (5000, 100)
    assert np.diff(Z.indptr).max() == 6
    codes = sc.encode(coder.model_, X, device="cpu")
    assert (Z != codes.to_scipy()).nnz == 0
    with torch.no_grad():
        expected = coder.model_(torch.from_numpy(X)).numpy()
    for form in (Z, codes, Z.toarray()):
        np.testing.assert_allclose(coder.inverse_transform(form), expected, rtol=1e-5, atol=1e-5)

    monkeypatch.setitem(sys.modules, "scipy", None)  # as if scipy were not installed
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)
    without = coder.transform(X[:10])
    assert isinstance(without, sc.Codes) and without.words == [str(i) for i in range(10)]
    np.testing.assert_allclose(without.dense(), Z[:10].toarray(), rtol=1e-5, atol=1e-6)  # 10 rows, not 5,000: other sums


def test_save_writes_the_cli_run_directory_and_load_reads_it(fitted, tmp_path, sample):
    coder, _ = fitted
    run = tmp_path / "nb"
    coder.save(run)
    assert sorted(p.name for p in run.iterdir()) == sorted(RUN_FILES)
    with pytest.raises(sc.SparsecodeError, match="already exists; pass force=True"):
        coder.save(run)
    result = CliRunner().invoke(app, ["encode", str(run), str(SAMPLE), "--out", str(tmp_path / "c.h5"), "-q"])
    assert result.exit_code == 0, result.output
    from_cli = sc.load_codes(tmp_path / "c.h5").to_scipy()
    assert (from_cli != coder.transform(SAMPLE)).nnz == 0

    loaded = sc.SparseCoder.load(run)
    # config.json records the values in use of the settings left to their objective's default.
    assert loaded.get_params() == {**coder.get_params(), **coder.config.resolved_settings(), "aux_k": 0,
                                   "init": coder.config.resolved("init")}
    assert loaded.metrics_ == coder.metrics_ and loaded.summary_ == coder.summary_
    assert (loaded.transform(sample.vectors) != from_cli).nnz == 0


def test_load_a_run_that_sparsecode_train_wrote(run_dir, codes):
    coder = sc.SparseCoder.load(run_dir)
    assert (coder.hidden, coder.k, coder.epochs) == (200, 8, 3)
    assert (coder.transform(SAMPLE) != codes.to_scipy()).nnz == 0


def test_mistakes_are_one_clear_error(sample):
    with pytest.raises(sc.SparsecodeError, match="unknown setting\\(s\\) hiden; the settings are TrainConfig's"):
        sc.SparseCoder(hiden=10)
    with pytest.raises(sc.SparsecodeError, match="not fitted yet; call fit\\(X\\) first"):
        sc.SparseCoder().transform(sample.vectors)
    bad = sample.vectors[:50].copy()
    bad[7] = np.nan
    with pytest.raises(sc.SparsecodeError, match="fit\\(X\\): 1 row\\(s\\) contain NaN or Inf or are all zeros "
                                                 "\\(first: row 7\\)"):
        sc.SparseCoder(**SETTINGS).fit(bad)


def test_array_likes_are_arrays_and_the_names_of_the_outputs(fitted, sample):
    coder, _ = fitted
    X = sample.vectors[:200]
    expected = coder.transform(X).toarray()
    np.testing.assert_array_equal(coder.transform(X.tolist()).toarray(), expected)  # was a TypeError about paths
    np.testing.assert_array_equal(coder.transform(torch.from_numpy(X)).toarray(), expected)
    names = coder.get_feature_names_out()
    assert names.dtype == object and names.shape == (100,) and list(names[:3]) == ["sparsecoder0", "sparsecoder1",
                                                                                     "sparsecoder2"]
    assert coder.n_features_in_ == 50 and coder.__sklearn_is_fitted__()
    with pytest.raises(sc.SparsecodeError, match=r"^transform\(X\): not an \(N, D\) array of vectors \("):
        coder.transform([[0.1, 0.2], [0.3]])
    assert "sklearn.decomposition.SparseCoder" in sc.SparseCoder.__doc__


def test_before_fit_the_error_is_scikit_learns_not_fitted_error(sample, monkeypatch):
    """A ValueError and an AttributeError as scikit-learn's is; an instance of scikit-learn's own
    class too once the program has imported it (here a stand-in defined as scikit-learn defines it:
    scikit-learn is no dependency, and sparsecode never imports it)."""
    coder = sc.SparseCoder()
    for use in (lambda: coder.transform(sample.vectors), coder.get_feature_names_out, lambda: coder.n_features_in_):
        with pytest.raises(sc.NotFittedError) as exc:
            use()
        assert isinstance(exc.value, ValueError) and isinstance(exc.value, AttributeError)
    assert not hasattr(coder, "n_features_in_") and not coder.__sklearn_is_fitted__()

    theirs = type(sys)("sklearn.exceptions")
    theirs.NotFittedError = type("NotFittedError", (ValueError, AttributeError), {})
    monkeypatch.setitem(sys.modules, "sklearn.exceptions", theirs)
    with pytest.raises(theirs.NotFittedError) as exc:
        coder.transform(sample.vectors)
    assert isinstance(exc.value, sc.NotFittedError) and "not fitted yet; call fit(X) first" in str(exc.value)


class KeyedVectorsLike:
    """What the estimator and sc.load_embeddings read of gensim's KeyedVectors: index_to_key, vectors."""

    def __init__(self, words, vectors):
        self.index_to_key, self.vectors = words, vectors


def test_keyed_vectors_in_memory_need_no_file(sample):
    from gensim.models import KeyedVectors

    words, vectors = sample.words[:1000], sample.vectors[:1000]
    kv = KeyedVectors(vector_size=50)
    kv.add_vectors(words, vectors)
    for given in (kv, KeyedVectorsLike(words, vectors)):
        emb = sc.load_embeddings(given)
        assert emb.words == words and emb.path == "(in memory)"
        np.testing.assert_array_equal(emb.vectors, vectors)
    coder = sc.SparseCoder(**SETTINGS).fit(kv)
    reference = sc.SparseCoder(**SETTINGS).fit(vectors)
    np.testing.assert_array_equal(coder.transform(kv).toarray(), reference.transform(vectors).toarray())
    assert sc.encode(coder.model_, kv).words == words  # the words themselves, not row numbers
    with pytest.raises(sc.SparsecodeError, match=r"^fit\(X\): the keys must be words \(strings\), found int 0$"):
        sc.SparseCoder(**SETTINGS).fit(KeyedVectorsLike([0, 1], vectors[:2]))
    bad = vectors[:3].copy()
    bad[1] = 0
    with pytest.raises(sc.SparsecodeError, match=r"all zeros \(first: row 1\)"):
        sc.load_embeddings(KeyedVectorsLike(words[:3], bad))


def test_sparsecode_never_imports_gensim_or_scikit_learn():
    code = ("import sys, numpy as np, sparsecode as sc\n"
            "class KV:\n    index_to_key = ['a', 'b', 'c']\n    vectors = np.eye(3, dtype=np.float32) + 1\n"
            "sc.SparseCoder(hidden=4, k=1, epochs=1, device='cpu').fit(KV()).transform(KV())\n"
            "print(sorted(m for m in ('gensim', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr
