"""The training data source: the order of an epoch, its split over processes, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sparsecode as sc
import sparsecode.data as data
from sparsecode.data import ArrayRows, BatchSource, FileRows

from .conftest import SMALL, sample_subset, stop_at


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 100 rows, buffers of 3 chunks: the sample's 5,000 words stream in 17 buffers."""
    monkeypatch.setattr(data, "CHUNK_ROWS", 100)
    monkeypatch.setattr(data, "BUFFER_CHUNKS", 3)


class CountingRows(ArrayRows):
    """Rows whose value is their own position, recording how many rows each read takes."""

    def __init__(self, n: int):
        super().__init__(np.repeat(np.arange(n, dtype=np.float32)[:, None], 2, axis=1))
        self.reads: list[int] = []

    def take(self, rows):
        self.reads.append(len(rows))
        return super().take(rows)


def epoch(rows, batch_size, seed, rank=0, world=1):
    source = BatchSource(rows, batch_size, torch.from_numpy, rank, world)
    source.start_epoch(torch.Generator().manual_seed(seed))
    batches = [source.batch(b)[:, 0].long() for b in range(source.steps_per_epoch)]
    source.finish_epoch()
    return batches, source


def test_an_epoch_visits_every_row_once_in_shuffled_chunks(small_chunks):
    rows = CountingRows(1234)
    batches, source = epoch(rows, 64, seed=0)
    assert source.steps_per_epoch == 20 and [len(b) for b in batches] == [64] * 19 + [1234 - 19 * 64]
    order = torch.cat(batches)
    assert sorted(order.tolist()) == list(range(1234))
    # The first buffer holds exactly three whole chunks, in shuffled order.
    first_buffer = order[:300]
    assert sorted({int(r) // 100 for r in first_buffer}) == sorted({int(r) // 100 for r in first_buffer})[:3]
    assert len({int(r) // 100 for r in first_buffer}) == 3 and not torch.equal(first_buffer, first_buffer.sort().values)
    # Memory: a read is at most one buffer; another seed, another order.
    assert max(rows.reads) <= 300
    assert not torch.equal(order, torch.cat(epoch(rows, 64, seed=1)[0]))


def test_the_order_does_not_depend_on_the_number_of_processes(small_chunks):
    rows = CountingRows(1001)
    reference, _ = epoch(rows, 50, seed=3)
    for world in (2, 3):
        parts = [epoch(rows, 50, seed=3, rank=r, world=world)[0] for r in range(world)]
        for b, expected in enumerate(reference):
            assert torch.equal(torch.cat([p[b] for p in parts]), expected), (world, b)
    # Each of two processes reads about half of the rows, never a whole buffer at once.
    half = CountingRows(1001)
    epoch(half, 50, seed=3, rank=1, world=2)
    assert sum(half.reads) == sum(len(b) - len(b) // 2 for b in reference) and max(half.reads) <= 150


def test_small_data_keeps_the_one_shuffle_of_the_whole_vocabulary():
    """Up to CHUNK_ROWS x BUFFER_CHUNKS words, an epoch is torch.randperm of all rows, read once."""
    rows = CountingRows(5000)
    reference = torch.Generator().manual_seed(7)
    gen = torch.Generator().manual_seed(7)
    source = BatchSource(rows, 256, torch.from_numpy)
    for _ in range(2):
        source.start_epoch(gen)
        got = torch.cat([source.batch(b)[:, 0].long() for b in range(source.steps_per_epoch)])
        source.finish_epoch()
        assert torch.equal(got, torch.randperm(5000, generator=reference))
    assert rows.reads == [5000]


def test_streamed_file_trains_like_the_same_vectors_in_memory(tmp_path, sample, small_chunks):
    words, vectors = sample_subset(sample, 1500)
    path = tmp_path / "emb.h5"
    sc.embeddings.write_embeddings(path, words, vectors)
    cfg = sc.TrainConfig(**{**SMALL, "epochs": 2, "hidden": 64})
    from_file = sc.train(path, cfg)
    in_memory = sc.train(sc.Embeddings(words, vectors, str(path)), cfg)
    for name, tensor in in_memory.model.weights().items():
        assert torch.equal(from_file.model.weights()[name], tensor), name
    assert {**from_file.summary, "train_seconds": 0} == {**in_memory.summary, "train_seconds": 0}
    assert from_file.run_info["n_words"] == 1500


def test_streamed_resume_is_exact_and_the_checkpoint_holds_no_permutation(tmp_path, sample, small_chunks):
    words, vectors = sample_subset(sample, 1500)
    path = tmp_path / "emb.h5"
    sc.embeddings.write_embeddings(path, words, vectors)
    cfg = sc.TrainConfig(**{**SMALL, "epochs": 2, "hidden": 64, "batch_size": 64, "checkpoint_every": 5})
    reference = sc.train(path, cfg).model.weights()

    out = tmp_path / "run"
    with pytest.raises(sc.errors.TrainingInterrupted):
        sc.train(path, cfg, out_dir=out, progress=stop_at(31))  # mid-epoch 2, mid-buffer
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["position"]["epoch"] == 2 and state["position"]["batch"] == 31 - 24
    sizes = [t.numel() for t in state.values() if isinstance(t, torch.Tensor)]
    assert 1500 not in sizes and "perm" not in state
    resumed = sc.train(path, cfg, out_dir=out, resume=True).model.weights()
    for name, tensor in reference.items():
        assert torch.equal(resumed[name], tensor), name


def test_file_rows_read_the_kept_words_after_duplicates(tmp_path):
    from .conftest import write_h5

    vectors = np.arange(1, 21, dtype=np.float32).reshape(10, 2)
    path = write_h5(tmp_path / "dup.h5", words=["a", "b", "a", "c", "d", "b", "e", "f", "g", "h"], vectors=vectors)
    with pytest.warns(sc.embeddings.DuplicateWordsWarning):
        file = sc.EmbeddingFile(path)
    with file:
        rows = FileRows(file)
        kept = np.array([0, 1, 3, 4, 6, 7, 8, 9])
        assert rows.n == 8
        np.testing.assert_array_equal(rows.read(0, 8), vectors[kept])
        np.testing.assert_array_equal(rows.take(np.array([1, 2, 7])), vectors[[1, 3, 9]])
        stats = data.scan(rows)
        np.testing.assert_allclose(stats.mean, vectors[kept].mean(0))
        assert stats.sq_dev == pytest.approx(((vectors[kept] - vectors[kept].mean(0)) ** 2).sum())


def _epochs(source, seeds):
    out = []
    for seed in seeds:
        source.start_epoch(torch.Generator().manual_seed(seed))
        out.append([source.batch(b)[:, 0].long() for b in range(source.steps_per_epoch)])
        source.finish_epoch()
    return out


@pytest.mark.parametrize("rank,world", [(0, 1), (0, 2), (1, 2), (2, 3)])
def test_data_kept_on_the_device_gives_the_streamed_batches(small_chunks, rank, world):
    """keep_resident (what a GPU does when the data fits): the same batches as streaming, for every
    process's slice and epoch, from one read of the rows at the start and none after."""
    streamed = _epochs(BatchSource(CountingRows(1001), 50, torch.from_numpy, rank, world), (3, 4))
    rows = CountingRows(1001)
    source = BatchSource(rows, 50, torch.from_numpy, rank, world)
    source.keep_resident()
    assert source.resident.shape == (1001, 2) and torch.equal(source.resident[:, 0], torch.arange(1001.0))
    resident = _epochs(source, (3, 4))
    assert rows.reads == []  # no row read again
    for got_epoch, want_epoch in zip(resident, streamed, strict=True):
        for got, want in zip(got_epoch, want_epoch, strict=True):
            assert torch.equal(got, want)


@pytest.mark.parametrize("rank,world", [(0, 1), (1, 2)])
def test_fetching_the_next_buffer_ahead_gives_the_same_batches_and_reads(small_chunks, rank, world):
    """prefetch (on a GPU: the next buffer loaded on a side stream): the same batches, each buffer still
    read once, and at most three buffers held."""
    plain_rows, ahead_rows = CountingRows(1001), CountingRows(1001)
    plain = _epochs(BatchSource(plain_rows, 50, torch.from_numpy, rank, world), (5,))
    source = BatchSource(ahead_rows, 50, torch.from_numpy, rank, world, prefetch=True)
    source.start_epoch(torch.Generator().manual_seed(5))
    held = []
    got = []
    for b in range(source.steps_per_epoch):
        got.append(source.batch(b)[:, 0].long())
        held.append(len(source._loaded))
    source.finish_epoch()
    for a, b in zip(got, plain[0], strict=True):
        assert torch.equal(a, b)
    assert sorted(ahead_rows.reads) == sorted(plain_rows.reads) and max(held) <= 3 and max(held) >= 2


def test_training_with_the_data_kept_on_the_device_is_identical(tmp_path, sample, small_chunks, monkeypatch):
    """The Trainer's resident path (taken on a GPU when the data fits its budget), forced on the CPU:
    the same weights as streaming from the file."""
    import importlib

    train_module = importlib.import_module("sparsecode.training")  # the package's "train" is the function
    words, vectors = sample_subset(sample, 1500)
    path = tmp_path / "emb.h5"
    sc.embeddings.write_embeddings(path, words, vectors)
    cfg = sc.TrainConfig(**{**SMALL, "epochs": 2, "hidden": 64, "batch_size": 64})
    streamed = sc.train(path, cfg).model.weights()
    monkeypatch.setattr(sc.devices.Device, "keeps_data", lambda self, n, dim: True)
    trainer = train_module.Trainer(sc.data.open_training_data(path), cfg)
    assert trainer.source.resident is not None
    resident = sc.train(path, cfg).model.weights()
    for name, tensor in streamed.items():
        assert torch.equal(resident[name], tensor), name


def test_rows_that_do_not_vary_are_refused_before_training(tmp_path):
    """Two identical words trained and printed an FVU of 289 digits (a variance of zero): vectors
    that are all the same, or differ only by float32 rounding, are one error; two that differ train."""
    same = np.tile(np.float32([0.1, -0.2, 0.3]), (2, 1))
    rounding = np.float32([[1.0, 2.0, 3.0], [np.nextafter(np.float32(1.0), np.float32(2.0)), 2.0, 3.0]])
    for vectors in (same, rounding):
        with pytest.raises(sc.SparsecodeError) as exc:
            sc.train(sc.Embeddings(["a", "b"], vectors, "two.h5"), sc.TrainConfig(hidden=4, k=1, epochs=1, device="cpu"))
        assert str(exc.value) == ("two.h5: all 2 vectors are the same (they do not vary about their mean), so there is "
                                  "nothing to learn and FVU is undefined; train on vectors that differ")
    differ = np.float32([[1.0, 2.0, 3.0], [1.0, 2.0, 3.001]])
    result = sc.train(sc.Embeddings(["a", "b"], differ, "two.h5"), sc.TrainConfig(hidden=4, k=1, epochs=1, device="cpu"))
    assert np.isfinite(result.summary["fvu"]) and result.summary["fvu"] < 10


def test_rank_draws_share_an_epoch_by_the_blocks_rank_weights(monkeypatch):
    """With the first word alone flat, rows 0-3 weigh 1, 1/2, 1/3, 1/4 at power 1: blocks [0, 1] and
    [2, 3] hold 1.5 and 7/12 of the mass, so of 4 draws 2.88 and 1.12, rounded by largest remainder
    to 3 and 1. Within the flat ranks every word weighs 1."""
    assert data.rank_draws([2, 2], 1.0).tolist() == [2, 2]  # 4 words: all within RANK_FLAT
    monkeypatch.setattr(data, "RANK_FLAT", 1)
    assert data.rank_draws([2, 2], 1.0).tolist() == [3, 1]
    assert data.rank_draws([2, 2], 0.0).tolist() == [2, 2]
    monkeypatch.setattr(data, "RANK_FLAT", 2)
    np.testing.assert_allclose(data.rank_weights(np.array([0, 1, 3, 7]), 0.5), [1.0, 1.0, 0.5 ** 0.5, 0.5])
    assert data.rank_draws([100, 100, 34], 0.5).sum() == 234


def test_an_epoch_by_rank_draws_n_rows_favouring_the_first_ones(small_chunks, monkeypatch):
    """With rank_power an epoch has as many rows as the data, drawn with replacement, each buffer's
    share fixed by its rows' weight; the same seed draws the same epoch, over any number of processes."""
    monkeypatch.setattr(data, "RANK_FLAT", 1)
    rows = CountingRows(1234)
    source = BatchSource(rows, 64, torch.from_numpy, rank_power=1.0)
    source.start_epoch(torch.Generator().manual_seed(0))
    order = torch.cat([source.batch(b)[:, 0].long() for b in range(source.steps_per_epoch)])
    epoch_order = source.order
    source.finish_epoch()
    assert len(order) == 1234 and source.steps_per_epoch == 20
    counts = np.bincount(order.numpy(), minlength=1234)
    assert counts[:100].sum() > 0.5 * 1234 and counts[0] > counts[600:700].sum()  # 1/r: the first chunk holds most
    chunk_draws = data.rank_draws([100] * 12 + [34], 1.0)
    for j, group in enumerate(epoch_order.groups):  # each buffer: its chunks' share of the draws, from its chunks
        span = order[epoch_order.starts[j] : epoch_order.starts[j + 1]].numpy() // 100
        assert len(span) == chunk_draws[group].sum() and set(span) <= set(group.tolist())
    for world in (2, 3):
        parts = []
        for r in range(world):
            s = BatchSource(rows, 64, torch.from_numpy, r, world, rank_power=1.0)
            s.start_epoch(torch.Generator().manual_seed(0))
            parts.append([s.batch(b)[:, 0].long() for b in range(s.steps_per_epoch)])
        assert torch.equal(torch.cat([torch.cat([p[b] for p in parts]) for b in range(20)]), order)


def test_an_epoch_by_rank_within_the_flat_ranks_is_a_plain_shuffle(small_chunks):
    """Every row weighs 1 below RANK_FLAT: each is drawn exactly once, as without rank_power."""
    rows = CountingRows(1234)
    source = BatchSource(rows, 64, torch.from_numpy, rank_power=0.5)
    source.start_epoch(torch.Generator().manual_seed(0))
    order = torch.cat([source.batch(b)[:, 0].long() for b in range(source.steps_per_epoch)])
    assert sorted(order.tolist()) == list(range(1234)) and not torch.equal(order, order.sort().values)
