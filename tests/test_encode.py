"""Encoding into the codes file: layout, exact agreement with the model, the per-unit report."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

import sparsecode as sc
from sparsecode.model import SparseAutoencoder

from .conftest import SAMPLE, sample_subset, write_h5


def _dense_codes(run_dir, vectors: np.ndarray, k: int) -> np.ndarray:
    """Reference: dense top-k codes computed directly from model.pt, as its contract says (the k
    largest ``pre + select_bias``, their ``relu(pre)``; a cosine model's offsets at length sqrt(D))."""
    s = torch.load(run_dir / "model.pt", weights_only=True)
    h = torch.from_numpy(vectors) - s["input_mean"]
    if bytes(s["meta.geometry"].tolist()) == b"cosine":
        x = h * (h.shape[1] ** 0.5 / h.norm(dim=1, keepdim=True))
    else:
        x = h / s["input_scale"]
    pre = (x - s["b_dec"]) @ s["W_enc"] + s["b_enc"]
    idx = (pre + s.get("select_bias", torch.zeros(pre.shape[1]))).topk(k, dim=1).indices
    return torch.zeros_like(pre).scatter(1, idx, pre.gather(1, idx).clamp_min(0)).numpy()


def test_codes_file_layout(codes_path):
    with h5py.File(codes_path) as f:
        assert tuple(f["codes"].attrs["shape"]) == (5000, 200)
        assert f["codes/indptr"].dtype == np.int64 and f["codes/indptr"].shape == (5001,)
        assert f["codes/indices"].dtype == np.int32 and f["codes/data"].dtype == np.float32
        assert f["dimensions/top_words"].shape == (200, 10)
        assert f["dimensions/top_values"].shape == (200, 10)
        assert f["dimensions/frequency"].shape == (200,)
        assert f.attrs["encode_k"] == 8 and f.attrs["encode_method"] == "encoder"
        assert f.attrs["hidden"] == 200 and f.attrs["k"] == 8 and f.attrs["seed"] == 0
        assert json.loads(f.attrs["config_json"])["epochs"] == 3


def test_codes_equal_the_models_top_k(codes, run_dir, sample):
    dense = _dense_codes(run_dir, sample.vectors, 8)
    got = codes.dense()
    np.testing.assert_allclose(got, dense, rtol=1e-5, atol=1e-6)
    assert np.array_equal(got > 0, dense > 0)
    assert codes.words == sample.words
    for i in (0, 1, 4999):  # indices increase within each row, values are positive
        units, values = codes.row(i)
        assert np.all(np.diff(units) > 0) and np.all(values > 0)


def test_unit_report_matches_brute_force(codes, sample):
    dense = codes.dense()
    np.testing.assert_array_equal(codes.frequency, (dense > 0).sum(0))
    for unit in range(codes.n_units):
        col = dense[:, unit]
        order = np.argsort(-col, kind="stable")[:10]
        order = order[col[order] > 0]
        assert [w for w, _ in codes.top_words(unit)] == [sample.words[i] for i in order]
        np.testing.assert_array_equal(codes.top_values_table[unit, : len(order)], col[order])


def test_k_override_and_chunked_encoding_equal_one_shot(tmp_path, run_dir, sample):
    out = tmp_path / "k4.h5"
    summary = sc.encode_file(run_dir, SAMPLE, out, k=4, device="cpu", batch_size=300, chunk_rows=1234)
    codes = sc.load_codes(out)
    np.testing.assert_allclose(codes.dense(), _dense_codes(run_dir, sample.vectors, 4), rtol=1e-5, atol=1e-6)
    assert summary["k"] == 4 and summary["words"] == 5000 and summary["nnz"] == codes.nnz
    assert codes.l0().max() <= 4


def test_encode_refuses_existing_output_and_bad_k(tmp_path, run_dir, codes_path):
    with pytest.raises(sc.SparsecodeError, match="already exists; pass force=True"):
        sc.encode(run_dir, SAMPLE, codes_path)
    with pytest.raises(sc.SparsecodeError, match=r"^k must be between 1 and the hidden size 200 \(got 201\)$"):
        sc.encode(run_dir, SAMPLE, tmp_path / "x.h5", k=201)
    with pytest.raises(sc.SparsecodeError, match=r"^k must be between 1 and the hidden size 200 \(got 0\)$"):
        sc.encode(run_dir, SAMPLE, tmp_path / "x.h5", k=0)
    assert not (tmp_path / "x.h5").exists()


def test_failed_encode_leaves_no_file(tmp_path, run_dir, sample):
    words, vecs = sample_subset(sample, 3000)
    vecs[2900] = np.nan  # found only in a late chunk, after earlier chunks were written
    bad = write_h5(tmp_path / "bad.h5", words=words, vectors=vecs)
    with pytest.raises(sc.SparsecodeError, match=r"1 row\(s\) of 'vectors' contain NaN"):
        sc.encode(run_dir, bad, tmp_path / "codes.h5", chunk_rows=1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.h5"]


def test_dimension_mismatch(tmp_path, run_dir, sample):
    words, vecs = sample_subset(sample, 10)
    other = write_h5(tmp_path / "d300.h5", words=words, vectors=np.tile(vecs, (1, 6)))
    with pytest.raises(sc.SparsecodeError, match="vectors have 300 dimensions but the model .* expects 50"):
        sc.encode(run_dir, other, tmp_path / "c.h5")


def test_encode_uses_encode_k_from_the_run(tmp_path, sample):
    run = tmp_path / "run"
    sc.train(sample, sc.TrainConfig(hidden=100, k=4, encode_k=12, epochs=1, device="cpu"), out_dir=run)
    summary = sc.encode_file(run, SAMPLE, tmp_path / "c.h5")
    assert summary["k"] == 12
    assert SparseAutoencoder.load(run / "model.pt").n_hidden == 100


@pytest.mark.parametrize("rows_per_batch, rows_below", [(50, None), (4, None), (50, 120), (4, 7)])
def test_unit_report_equals_brute_force_over_batches_with_ties(rows_per_batch, rows_below):
    """4 rows: entries wait several batches to be merged; rows_below: only the first rows are top words,
    every row counts in the frequency."""
    from sparsecode.report import UnitReport

    g = torch.Generator().manual_seed(0)
    H, M = 12, 3
    report = UnitReport(H, M, rows_below=rows_below)
    entries = []
    for first in range(0, 200, rows_per_batch):
        rows = torch.arange(first, first + rows_per_batch).repeat_interleave(2)
        units = torch.randint(0, H - 1, (rows.numel(),), generator=g)  # unit H-1 stays unused
        values = torch.randint(1, 6, (rows.numel(),), generator=g).float()  # few values: many ties
        report.update(rows, units, values)
        entries += list(zip(rows.tolist(), units.tolist(), values.tolist()))
    got = report.result()
    for unit in range(H):
        mine = sorted(((-v, r) for r, u, v in entries if u == unit and (rows_below is None or r < rows_below)))[:M]
        want_rows = [r for _, r in mine] + [-1] * (M - len(mine))
        assert got.top_rows[unit].tolist() == want_rows, unit
        assert got.top_values[unit].tolist() == [-v for v, _ in mine] + [0.0] * (M - len(mine))
        assert got.frequency[unit] == sum(u == unit for _, u, _ in entries)


def test_top_words_are_ranked_among_the_first_words_only(run_dir, tmp_path, sample):
    """top_among=N: each unit's stored top words are its strongest among the first N words; the codes,
    the frequencies and N in the file's attributes follow; 0 ranks every word."""
    every = sc.load_codes(sc.encode_file(run_dir, SAMPLE, tmp_path / "all.h5", top_among=0)["out"])
    first = sc.load_codes(sc.encode_file(run_dir, SAMPLE, tmp_path / "first.h5", top_among=1000)["out"])
    assert (every.attrs["top_among"], first.attrs["top_among"]) == (0, 1000)
    assert np.array_equal(every.frequency, first.frequency) and np.array_equal(every.indices, first.indices)
    rank = {w: i for i, w in enumerate(sample.words)}
    assert all(rank[w] < 1000 for u in range(first.n_units) for w, _ in first.top_words(u))
    assert any(rank[w] >= 1000 for u in range(every.n_units) for w, _ in every.top_words(u))
    for u in range(every.n_units):  # the same ranking, cut at 1,000 words
        assert [w for w, _ in every.top_words(u) if rank[w] < 1000] == [w for w, _ in first.top_words(u)][
            :len([w for w, _ in every.top_words(u) if rank[w] < 1000])]
    with pytest.raises(sc.SettingError, match="top_among must be 0 or more"):
        sc.encode_file(run_dir, SAMPLE, tmp_path / "bad.h5", top_among=-1)


def test_codes_are_sorted_per_row_whatever_order_the_coder_gives(run_dir, sample):
    """CUDA's top-k returns a row's units in any order: the CSR entries come out sorted all the same."""
    from sparsecode.encoding import encode_batch
    from sparsecode.topk import Encoded

    model, _ = sc.load_run(run_dir)
    g = torch.Generator().manual_seed(0)

    class Shuffled:
        def encode(self, x, k):
            enc = model.encode(x, k)
            order = torch.rand(enc.indices.shape, generator=g).argsort(1)
            return Encoded(enc.acts.gather(1, order), enc.indices.gather(1, order), enc.aux_acts, enc.aux_indices)

    x = torch.from_numpy(sample.vectors[:300])
    got, want = encode_batch(Shuffled(), x, 8), encode_batch(model, x, 8)
    for a, b in zip(got, want):
        assert torch.equal(a, b)
    assert (got.indices.view(300, -1).diff(1) > 0).all()


def test_iter_codes_hands_on_every_batch_in_order(run_dir, sample):
    """Batches are handed on one behind (on CUDA the next is queued first): the same entries, in order."""
    from sparsecode.encoding import encode_batch, iter_codes

    model, _ = sc.load_run(run_dir)
    vectors = sample.vectors[:1000]
    chunks = [(0, vectors[:600]), (600, vectors[600:])]
    got = list(iter_codes(model, iter(chunks), 8, batch_size=256))
    assert [first for first, _ in got] == [0, 256, 512, 600, 856]
    for first, batch in got:
        size = {0: 256, 256: 256, 512: 88, 600: 256, 856: 144}[first]
        want = encode_batch(model, torch.from_numpy(vectors[first : first + size]), 8)
        for a, b in zip(batch, want):
            assert torch.equal(a, b)


def test_cpu_batches_are_capped_and_give_the_same_codes(monkeypatch):
    """On a CPU a batch holds at most CPU_BATCH_VALUES pre-activations; the codes of every word are
    the same however many words a batch takes (a selection bias included)."""
    from sparsecode import encoding

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert encoding.device_batch(8192, 4096, cpu) == 1024 and encoding.device_batch(8192, 4096, cuda) == 8192
    assert encoding.device_batch(100, 1000, cpu) == 100 and encoding.device_batch(8192, 1 << 23, cpu) == 1
    vectors = np.random.default_rng(0).standard_normal((300, 20)).astype(np.float32)
    model = SparseAutoencoder(20, 400)
    model.initialise(torch.from_numpy(vectors), generator=torch.Generator().manual_seed(0))
    model.use_select_bias()
    model.select_bias.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
    model.eval()

    def codes(cap):
        monkeypatch.setattr(encoding, "CPU_BATCH_VALUES", cap)
        batches = [b for _, b in encoding.iter_codes(model, iter([(0, vectors)]), 8, batch_size=256)]
        return torch.cat([b.indices for b in batches]), torch.cat([b.data for b in batches])

    whole, small = codes(1 << 30), codes(400 * 7)  # batches of 256 words, then of 7
    # the same units; their values to float32 rounding (a product's blocking can follow its rows)
    assert torch.equal(whole[0], small[0])
    torch.testing.assert_close(whole[1], small[1], rtol=1e-6, atol=1e-6)
