"""Reading and validating embeddings files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import sparsecode as sc
from sparsecode.embeddings import DuplicateWordsWarning, EmbeddingFile, EmbeddingWriter, write_embeddings

from .conftest import SAMPLE, sample_subset, write_h5


def test_sample_is_glove_6b_50d_in_frequency_order(sample):
    assert len(sample) == 5000 and sample.dim == 50
    assert sample.vectors.dtype == np.float32
    assert sample.words[:6] == ["the", ",", ".", "of", "to", "and"]
    # GloVe 6B 50d's published vector for "the" starts 0.418 0.24968 -0.41242 0.1217 0.34527.
    np.testing.assert_array_equal(sample.vectors[0, :5], np.float32([0.418, 0.24968, -0.41242, 0.1217, 0.34527]))
    assert len(set(sample.words)) == 5000


def test_chunked_reading_equals_reading_all(sample):
    with EmbeddingFile(SAMPLE) as ef:
        chunks = list(ef.iter_chunks(chunk_rows=777))
    assert [first for first, _ in chunks] == list(range(0, 5000, 777))
    np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), sample.vectors)


def test_bytes_and_fixed_length_words_are_read(tmp_path, sample):
    words, vecs = sample_subset(sample, 10)
    path = write_h5(tmp_path / "b.h5", words=np.array([w.encode() for w in words], dtype="S"), vectors=vecs.astype(np.float64))
    emb = sc.load_embeddings(path)
    assert emb.words == words
    assert emb.vectors.dtype == np.float32
    np.testing.assert_array_equal(emb.vectors, vecs)


def test_duplicates_keep_first_and_warn_also_when_chunked(tmp_path, sample):
    words, vecs = sample_subset(sample, 20)
    words[5] = words[2]
    words[17] = words[2]
    path = write_h5(tmp_path / "d.h5", words=words, vectors=vecs)
    with pytest.warns(DuplicateWordsWarning, match="2 duplicate word"):
        emb = sc.load_embeddings(path)
    assert len(emb) == 18 and emb.words.count(words[2]) == 1
    keep = [i for i in range(20) if i not in (5, 17)]
    np.testing.assert_array_equal(emb.vectors, vecs[keep])
    with pytest.warns(DuplicateWordsWarning), EmbeddingFile(path) as ef:
        chunked = np.concatenate([c for _, c in ef.iter_chunks(chunk_rows=4)])
    np.testing.assert_array_equal(chunked, vecs[keep])


def _error(path) -> str:
    with pytest.raises(sc.SparsecodeError) as exc:
        sc.load_embeddings(path)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_missing_file_directory_empty_and_text(tmp_path):
    assert "file not found" in _error(tmp_path / "nope.h5")
    assert "is a directory" in _error(tmp_path)
    (tmp_path / "empty.h5").write_bytes(b"")
    assert "file is empty" in _error(tmp_path / "empty.h5")
    (tmp_path / "notes.txt").write_text("not embeddings\n")
    assert _error(tmp_path / "notes.txt").endswith("notes.txt: neither HDF5 nor GloVe, word2vec (text or binary), "
                                                   "fastText or .npy embeddings, gzipped or not; give an embeddings "
                                                   "file in one of those formats")
    (tmp_path / "glove.txt").write_text("the 0.1 0.2\nof 0.3 -0.4\n")  # text embeddings are read as convert reads them
    emb = sc.load_embeddings(tmp_path / "glove.txt")
    assert emb.words == ["the", "of"]
    assert np.array_equal(emb.vectors, np.array([[0.1, 0.2], [0.3, -0.4]], dtype=np.float32))
    assert emb.path == str(tmp_path / "glove.txt")


def test_truncated_file(tmp_path, sample):
    words, vecs = sample_subset(sample, 2000)
    full = write_h5(tmp_path / "full.h5", words=words, vectors=vecs)
    data = full.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    assert "truncated" in _error(tmp_path / "cut.h5")


@pytest.mark.parametrize(
    "datasets, expected",
    [
        (dict(words=["a", "b"]), "no dataset 'vectors'"),
        (dict(vectors=np.ones((2, 3), np.float32)), "no dataset 'words'"),
        (dict(words=["a", "b", "c"], vectors=np.ones((2, 3), np.float32)), "'words' has 3 entries but 'vectors' has 2 rows"),
        (dict(words=["a", "b"], vectors=np.ones(2, np.float32)), "must be 2-D"),
        (dict(words=["a", "b"], vectors=np.ones((2, 3, 4), np.float32)), "must be 2-D"),
        (dict(words=["a", "b"], vectors=np.array([["1", "2"], ["3", "4"]], dtype="S1")), "must be numbers (floating point or integer), got |S1"),
        (dict(words=np.zeros(0, dtype="S1"), vectors=np.ones((0, 3), np.float32)), "is empty"),
        (dict(words=np.array([1, 2]), vectors=np.ones((2, 3), np.float32)), "'words' must hold strings"),
    ],
)
def test_malformed_files(tmp_path, datasets, expected):
    assert expected in _error(write_h5(tmp_path / "bad.h5", **datasets))


def test_nan_and_inf_rows_are_counted_with_the_first_word(tmp_path, sample):
    words, vecs = sample_subset(sample, 300)
    vecs[7, 3] = np.nan
    vecs[250, 0] = np.inf
    path = write_h5(tmp_path / "nan.h5", words=words, vectors=vecs)
    msg = _error(path)
    assert f"2 row(s) of 'vectors' contain NaN or Inf (first bad row: word {words[7]!r})" in msg
    with EmbeddingFile(path) as ef, pytest.raises(sc.SparsecodeError, match=r"2 row\(s\)"):
        list(ef.iter_chunks(chunk_rows=100))


def test_invalid_utf8_word(tmp_path):
    path = tmp_path / "u.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("words", data=np.array([b"ok", b"caf\xe9"], dtype="S"))
        f.create_dataset("vectors", data=np.ones((2, 3), np.float32))
    assert "entry 1 is not valid UTF-8" in _error(path)


def test_zero_rows_are_refused(tmp_path, sample):
    words, vecs = sample_subset(sample, 50)
    vecs[[4, 9, 30]] = 0.0
    msg = _error(write_h5(tmp_path / "z.h5", words=words, vectors=vecs))
    assert f"3 row(s) of 'vectors' are all zeros (first: word {words[4]!r})" in msg
    vecs[40, 0] = np.nan
    msg = _error(write_h5(tmp_path / "zn.h5", words=words, vectors=vecs))
    assert f"1 row(s) of 'vectors' contain NaN or Inf and 3 are all zeros (first bad row: word {words[4]!r})" in msg


def test_integer_vectors_are_converted_with_a_warning(tmp_path):
    path = write_h5(tmp_path / "i.h5", words=["a", "b"], vectors=np.array([[1, 2], [3, -4]], np.int32))
    with pytest.warns(UserWarning, match=r"'vectors' are integers \(int32\); converted to float32"):
        emb = sc.load_embeddings(path)
    assert emb.vectors.dtype == np.float32
    np.testing.assert_array_equal(emb.vectors, [[1, 2], [3, -4]])


def test_writer_appends_blocks_that_read_back_exactly(tmp_path, sample):
    words, vecs = sample_subset(sample, 1000)
    with h5py.File(tmp_path / "blocks.h5", "w") as f:
        writer = EmbeddingWriter(f, vecs.shape[1])
        for start in range(0, 1000, 300):  # three blocks of 300 and one of 100
            writer.append(words[start : start + 300], vecs[start : start + 300])
        writer.append([], vecs[:0])
        assert writer.n == 1000
    write_embeddings(tmp_path / "once.h5", words + ["ünïcode"], np.vstack([vecs, vecs[:1]]).astype(np.float64))
    for name, n in (("blocks.h5", 1000), ("once.h5", 1001)):
        emb = sc.load_embeddings(tmp_path / name)
        assert emb.words == (words + ["ünïcode"])[:n]
        np.testing.assert_array_equal(emb.vectors, np.vstack([vecs, vecs[:1]])[:n])
