"""sc.SparseCoder: fit, transform, inverse_transform, save/load on the CLI's run directory."""

from __future__ import annotations

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
