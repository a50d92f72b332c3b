"""sc.encode in memory; a model that knows its objective and encode k, from its model.pt alone."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import sparsecode as sc
from sparsecode.cli import app
from sparsecode.model import SparseAutoencoder
from sparsecode.modelfile import META

from .conftest import SAMPLE


def same_codes(a: sc.Codes, b: sc.Codes) -> None:
    assert a.words == b.words and a.n_units == b.n_units
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)
    assert a.top_words_table == b.top_words_table
    np.testing.assert_array_equal(a.top_values_table, b.top_values_table)
    np.testing.assert_array_equal(a.frequency, b.frequency)
    assert {k: a.attrs.get(k) for k in ("encode_k", "encode_method", "sparsity")} == \
        {k: b.attrs.get(k) for k in ("encode_k", "encode_method", "sparsity")}


def test_encode_returns_codes_in_memory_and_writes_only_when_asked(tmp_path, monkeypatch, run_dir, codes):
    monkeypatch.chdir(tmp_path)
    in_memory = sc.encode(run_dir, SAMPLE, device="cpu")
    assert isinstance(in_memory, sc.Codes) and os.listdir(tmp_path) == []
    same_codes(in_memory, codes)  # the session's codes file, written by the same function with out=
    assert in_memory.attrs["run_dir"] == str(run_dir) and in_memory.path == ""
    written = sc.encode(run_dir, SAMPLE, out="c.h5", device="cpu")
    assert os.listdir(tmp_path) == ["c.h5"] and written.path == "c.h5"
    same_codes(written, codes)


def test_model_pt_alone_encodes_as_the_cli_does(tmp_path, sample):
    """A kl model with a capped encode k: its file alone says both (objective, k)."""
    run = tmp_path / "kl"
    sc.train(sample, sc.TrainConfig(hidden=60, sparsity="kl", encode_k=5, epochs=1, device="cpu"), out_dir=run)
    result = CliRunner().invoke(app, ["encode", str(run), str(SAMPLE), "--out", str(tmp_path / "cli.h5"), "-q"])
    assert result.exit_code == 0, result.output
    cli = sc.load_codes(tmp_path / "cli.h5")
    assert cli.attrs["encode_k"] == 5 and cli.l0().max() == 5

    model = SparseAutoencoder.load(run / "model.pt")  # no config.json, no sparsity given
    assert (model.sparsity, model.encode_k) == ("kl", 5)
    alone = sc.encode(run / "model.pt", SAMPLE, device="cpu")
    same_codes(alone, cli)
    assert "run_dir" not in alone.attrs
    x = torch.from_numpy(sample.vectors[:64])
    enc, ref = model.encode(x), model.encode(x, 5)
    assert torch.equal(enc.acts, ref.acts) and torch.equal(enc.indices, ref.indices)
    same_codes(sc.encode(model, sample, device="cpu"), cli)  # the model object, embeddings in memory


def test_model_encode_needs_no_k_and_arrays_get_row_numbers(run_dir, sample, codes):
    model, _ = sc.load_run(run_dir)
    assert model.encode_k == 8
    x = torch.from_numpy(sample.vectors[:100])
    assert torch.equal(model.encode(x).indices, model.encode(x, 8).indices)
    from_array = sc.encode(model, sample.vectors[:100], device="cpu")
    assert from_array.words == [str(i) for i in range(100)]
    np.testing.assert_array_equal(from_array.dense(), codes.dense(np.arange(100)))
    with pytest.raises(sc.SparsecodeError, match="expected a non-empty \\(N, D\\) array of vectors"):
        sc.encode(model, sample.vectors[0], device="cpu")


def test_files_without_meta_still_load(tmp_path, run_dir, sample):
    """A model.pt written before the meta tensors: from its run directory, as before; alone, a
    top-k model asks for k in one clear line."""
    old = tmp_path / "old"
    old.mkdir()
    for name in ("config.json", "metrics.jsonl", "summary.json"):
        (old / name).write_bytes((run_dir / name).read_bytes())
    state = torch.load(run_dir / "model.pt", weights_only=True)
    torch.save({k: v for k, v in state.items() if k not in META}, old / "model.pt")

    model, _ = sc.load_run(old)
    assert (model.sparsity, model.encode_k) == ("topk", 8)
    alone = SparseAutoencoder.load(old / "model.pt")
    assert alone.encode_k is None
    x = torch.from_numpy(sample.vectors[:10])
    with pytest.raises(sc.SparsecodeError, match="does not record its encode k .* pass k, or load it with its run"):
        alone.encode(x)
    assert torch.equal(alone.encode(x, 8).indices, model.encode(x).indices)
    with pytest.raises(sc.SparsecodeError, match="trained with sparsity topk, not kl"):
        SparseAutoencoder.load(run_dir / "model.pt", sparsity="kl")
