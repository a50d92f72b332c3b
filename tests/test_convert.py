"""Converting the formats people have into the HDF5 input: exact round trips, malformed input, limits.

The text and binary files are written by gensim (``KeyedVectors.save_word2vec_format``), the
reference for these formats, or by hand where a tool writes them differently (fastText's trailing
space, word2vec.c's newline after each binary vector).
"""

from __future__ import annotations

import gzip
import shutil
import tracemalloc
import warnings

import numpy as np
import pytest
from gensim.models import KeyedVectors

import sparsecode as sc
from sparsecode.convert import MalformedEntriesWarning, convert_embeddings, detect_format
from sparsecode.embeddings import DuplicateWordsWarning

from .conftest import write_h5


def gzip_file(path, out=None):
    out = out or path.with_name(path.name + ".gz")
    with open(path, "rb") as src, gzip.open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return out


@pytest.fixture(scope="session")
def files(tmp_path_factory, sample):
    """The sample in every input format, keyed by a name; values are (path, format it is)."""
    d = tmp_path_factory.mktemp("formats")
    kv = KeyedVectors(sample.dim)
    kv.add_vectors(sample.words, sample.vectors)
    kv.save_word2vec_format(d / "glove.txt", write_header=False)
    kv.save_word2vec_format(d / "w2v.txt")
    kv.save_word2vec_format(d / "w2v.bin", binary=True)
    # fastText .vec: word2vec text with a space before each line break.
    with open(d / "ft.vec", "w", encoding="utf-8") as fh:
        fh.write(f"{len(sample)} {sample.dim}\n")
        for word, vec in zip(sample.words, sample.vectors):
            fh.write(word + " " + " ".join(map(str, vec)) + " \n")
    # word2vec.c -binary 1: a newline after each vector.
    with open(d / "c.bin", "wb") as fh:
        fh.write(f"{len(sample)} {sample.dim}\n".encode())
        for word, vec in zip(sample.words, sample.vectors):
            fh.write(word.encode() + b" " + vec.astype("<f4").tobytes() + b"\n")
    np.save(d / "m.npy", sample.vectors.astype(np.float64))  # float64 on disk, float32 after conversion
    (d / "vocab.txt").write_text("\n".join(sample.words) + "\n", encoding="utf-8")
    out = {
        "glove": (d / "glove.txt", "glove"),
        "word2vec": (d / "w2v.txt", "word2vec"),
        "word2vec-bin": (d / "w2v.bin", "word2vec-bin"),
        "fasttext": (d / "ft.vec", "word2vec"),
        "word2vec.c": (d / "c.bin", "word2vec-bin"),
        "npy": (d / "m.npy", "npy"),
        "glove.gz": (gzip_file(d / "glove.txt"), "glove"),
        "word2vec-bin.gz": (gzip_file(d / "w2v.bin"), "word2vec-bin"),
        "npy.gz": (gzip_file(d / "m.npy"), "npy"),
        # Named to mislead: the content decides.
        "glove named .bin": (shutil.copy(d / "glove.txt", d / "glove-really.bin"), "glove"),
        "binary named .txt.gz": (gzip_file(d / "w2v.bin", d / "binary-really.txt.gz"), "word2vec-bin"),
    }
    return out


@pytest.mark.parametrize("name", ["glove", "word2vec", "word2vec-bin", "fasttext", "word2vec.c", "npy", "glove.gz",
                                  "word2vec-bin.gz", "npy.gz", "glove named .bin", "binary named .txt.gz"])
def test_every_format_round_trips_exactly(tmp_path, files, sample, name):
    path, kind = files[name]
    assert detect_format(path) == kind
    vocab = path.with_name("vocab.txt") if kind == "npy" else None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean file gives no warning
        summary = convert_embeddings(path, tmp_path / "out.h5", vocab=vocab)
    assert (summary["format"], summary["words"], summary["dim"], summary["malformed"]) == (kind, 5000, 50, 0)
    assert summary["gzip"] == name.endswith(".gz")
    emb = sc.load_embeddings(tmp_path / "out.h5")
    assert emb.words == sample.words
    np.testing.assert_array_equal(emb.vectors, sample.vectors)  # bit for bit


@pytest.mark.parametrize("fmt", ["glove", "word2vec", "fasttext", "word2vec-bin", "npy"])
def test_explicit_format_reads_the_same(tmp_path, files, sample, fmt):
    path, _ = files[fmt]
    convert_embeddings(path, tmp_path / "out.h5", format=fmt, vocab=path.with_name("vocab.txt") if fmt == "npy" else None,
                       chunk_rows=777)  # several blocks, a partial last one
    emb = sc.load_embeddings(tmp_path / "out.h5")
    assert emb.words == sample.words
    np.testing.assert_array_equal(emb.vectors, sample.vectors)


def test_malformed_lines_are_skipped_counted_and_reported_by_line(tmp_path, sample):
    good = [f"{w} {' '.join(map(str, v[:4]))}" for w, v in zip(sample.words[:8], sample.vectors)]
    lines = [
        good[0],                          # line 1
        good[1],                          # line 2
        "short 0.1 0.2 0.3",              # line 3: 3 values, expected 4
        "bad 0.1 x 0.3 0.4",              # line 4: not a number
        "",                               # line 5: blank, ignored
        good[2],                          # line 6
        "nan 0.1 nan 0.3 0.4",            # line 7: NaN
        " 0.1 0.2 0.3 0.4",               # line 8: no word
        good[1],                          # line 9: repeat of line 2, dropped
        good[3],                          # line 10
    ]
    raw = "\n".join(lines).encode() + b"\n" + b"caf\xe9 0.1 0.2 0.3 0.4\n" + (good[4] + "\n").encode()  # line 11: Latin-1
    path = tmp_path / "g.txt"
    path.write_bytes(raw)
    with pytest.warns(MalformedEntriesWarning) as malformed, pytest.warns(DuplicateWordsWarning, match="1 duplicate"):
        summary = convert_embeddings(path, tmp_path / "out.h5")
    msg = str(malformed[0].message)
    assert msg == (f"{path}: skipped 5 malformed entries: line 3 (3 values, expected 4 as on line 1), line 4 ('x' is not a number), "
                   "line 7 (NaN or Inf value), line 8 (starts with a space: no word), line 11 (not valid UTF-8)")
    assert (summary["words"], summary["malformed"], summary["duplicates"]) == (5, 5, 1)
    emb = sc.load_embeddings(tmp_path / "out.h5")
    assert emb.words == sample.words[:5]
    np.testing.assert_array_equal(emb.vectors, sample.vectors[:5, :4])


def test_many_malformed_lines_list_the_first_ten(tmp_path):
    lines = ["a 1 2"] + [f"w{i} 1" for i in range(25)] + [f"b{i} 3 4" for i in range(25)]
    path = tmp_path / "g.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(MalformedEntriesWarning, match=r"skipped 25 malformed entries: line 2 .*line 11 \(1 values, "
                                                     r"expected 2 as on line 1\) and 15 more$"):
        summary = convert_embeddings(path, tmp_path / "out.h5")
    assert summary["words"] == 26


def test_limit_lowercase_normalize(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text("The 3 4\nthe 1 0\nCat 0 0\ndog 0 2\nend 1 1\n")
    with pytest.warns(DuplicateWordsWarning, match="1 duplicate word.* after lowercasing .*'the'"), \
            pytest.warns(MalformedEntriesWarning, match=r"skipped 1 malformed entry: line 3 \(all-zero vector\)"):
        summary = convert_embeddings(path, tmp_path / "a.h5", lowercase=True, normalize=True, limit=3)
    emb = sc.load_embeddings(tmp_path / "a.h5")
    assert emb.words == ["the", "dog", "end"]
    np.testing.assert_allclose(emb.vectors, np.float32([[0.6, 0.8], [0, 1], [2**-0.5, 2**-0.5]]), rtol=1e-6)
    assert summary["duplicates"] == 1 and summary["malformed"] == 1
    convert_embeddings(path, tmp_path / "b.h5", limit=2)
    assert sc.load_embeddings(tmp_path / "b.h5").words == ["The", "the"]


def test_a_file_mostly_malformed_is_an_error_naming_its_first_bad_line(tmp_path, sample):
    """Over half of the entries malformed: the file is not what it was read as (a short first line
    set GloVe's dimension, say), so nothing is written, rather than a file of a few words."""
    rows = [f"{w} {' '.join(f'{x:.4f}' for x in v)}\n" for w, v in zip(sample.words[:40], sample.vectors)]
    short = tmp_path / "short.txt"
    short.write_text("the 0.5\n" + "".join(rows[1:]))
    with pytest.raises(sc.SettingError) as exc:
        convert_embeddings(short, tmp_path / "out.h5")
    assert str(exc.value) == (f"{short}: 39 of 40 entries are malformed, the first line 2 (50 values, expected 1 as on "
                              "line 1); check that it is glove, or pass another format")
    assert not (tmp_path / "out.h5").exists()
    half = tmp_path / "half.txt"  # exactly half malformed: converted, with the warning
    half.write_text("".join(rows[:20]) + "".join(f"w{i} 1 2\n" for i in range(20)))
    with pytest.warns(MalformedEntriesWarning, match="skipped 20 malformed entries"):
        assert convert_embeddings(half, tmp_path / "half.h5")["words"] == 20


def test_a_byte_order_mark_is_skipped(tmp_path, sample):
    rows = "".join(f"{w} {' '.join(f'{x:.4f}' for x in v)}\n" for w, v in zip(sample.words[:30], sample.vectors))
    for name, header in (("bom.vec", "30 50\n"), ("bom.txt", "")):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + (header + rows).encode())
        summary = convert_embeddings(path, tmp_path / f"{name}.h5")
        assert (summary["format"], summary["words"], summary["dim"], summary["malformed"]) == (
            "word2vec" if header else "glove", 30, 50, 0)
        assert sc.load_embeddings(tmp_path / f"{name}.h5").words == sample.words[:30]


def test_a_header_that_disagrees_with_the_rows_is_not_read_as_binary(tmp_path, sample):
    rows = "".join(f"{w} {' '.join(f'{x:.4f}' for x in v)}\n" for w, v in zip(sample.words[:30], sample.vectors))
    path = tmp_path / "h.vec"
    path.write_text("2 40\n" + rows)
    for fmt in ("auto", "word2vec", "word2vec-bin"):
        with pytest.raises(sc.SparsecodeError) as exc:
            convert_embeddings(path, tmp_path / "out.h5", format=fmt)
        assert str(exc.value) == (f"{path}: line 2 has 50 values but the header on line 1 ('2 40') says 40; correct the "
                                  "header ('COUNT 50'), or remove it: without one the file reads as GloVe")
    assert not (tmp_path / "out.h5").exists()


def test_header_count_is_honoured(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("3 2\na 1 2\nb 3 4\n")
    with pytest.raises(sc.SparsecodeError, match="ends after 2 of the 3 vectors .* pass limit 2"):
        convert_embeddings(short, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()
    assert convert_embeddings(short, tmp_path / "out.h5", limit=2)["words"] == 2

    long = tmp_path / "long.txt"
    long.write_text("1 2\na 1 2\nb 3 4\n")
    with pytest.warns(MalformedEntriesWarning, match="more after the 1 vectors its header announces"):
        assert convert_embeddings(long, tmp_path / "long.h5")["words"] == 1


def test_truncated_binary_and_gzip_are_one_line_errors(tmp_path, files, sample):
    data = files["word2vec-bin"][0].read_bytes()
    end_of_2500 = len(b"5000 50\n") + sum(len(w.encode()) + 1 + 200 for w in sample.words[:2500])
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[: end_of_2500 + 10])  # 2,500 whole entries and the start of the next
    with pytest.raises(sc.SparsecodeError, match=r"ends after 2500 of the 5000 vectors .* pass limit 2500"):
        convert_embeddings(cut, tmp_path / "out.h5")
    assert convert_embeddings(cut, tmp_path / "out.h5", limit=2500)["words"] == 2500

    gz = files["glove.gz"][0].read_bytes()
    broken = tmp_path / "broken.txt.gz"
    broken.write_bytes(gz[: len(gz) // 2])
    with pytest.raises(sc.SparsecodeError) as exc:
        convert_embeddings(broken, tmp_path / "b.h5")
    assert str(exc.value).startswith(f"{broken}: cannot read it to the end") and "\n" not in str(exc.value)
    assert not (tmp_path / "b.h5").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.txt.gz", "cut.bin", "out.h5"]  # no temporaries


def test_binary_entries_with_bad_words_or_values_are_skipped(tmp_path):
    path = tmp_path / "w.bin"
    vec = np.float32([1.5, -2.0])
    with open(path, "wb") as fh:
        fh.write(b"4 2\n")
        fh.write(b"ok " + vec.tobytes())
        fh.write(b"caf\xe9 " + vec.tobytes())
        fh.write(b"nan " + np.float32([np.nan, 1]).tobytes())
        fh.write(b"ok2 " + (vec * 2).tobytes())
    with pytest.warns(MalformedEntriesWarning, match=r"entry 2 \(word is not valid UTF-8\), entry 3 \(NaN or Inf value\)"):
        convert_embeddings(path, tmp_path / "out.h5")
    emb = sc.load_embeddings(tmp_path / "out.h5")
    assert emb.words == ["ok", "ok2"]
    np.testing.assert_array_equal(emb.vectors, [vec, vec * 2])


def test_npy_vocabulary_and_array_checks(tmp_path, sample):
    vecs = sample.vectors[:6]
    np.save(tmp_path / "m.npy", vecs)
    (tmp_path / "v.txt").write_text("a\nb\n\nd\ne\nf\n\n")  # row 2's word is empty; a blank last line is dropped
    with pytest.warns(MalformedEntriesWarning, match=r"row 2 \(vocabulary line 3 is empty\)"):
        convert_embeddings(tmp_path / "m.npy", tmp_path / "out.h5", vocab=tmp_path / "v.txt")
    emb = sc.load_embeddings(tmp_path / "out.h5")
    assert emb.words == ["a", "b", "d", "e", "f"]
    np.testing.assert_array_equal(emb.vectors, vecs[[0, 1, 3, 4, 5]])

    def error(*needles, **kwargs):
        with pytest.raises(sc.SparsecodeError) as exc:
            convert_embeddings(kwargs.pop("src", tmp_path / "m.npy"), tmp_path / "x.h5", **kwargs)
        for needle in needles:
            assert needle in str(exc.value)

    error("needs its words: pass vocab FILE")
    (tmp_path / "v5.txt").write_text("a\nb\nc\nd\ne\n")
    error("has 6 rows but", "v5.txt has 5 words", vocab=tmp_path / "v5.txt")
    np.save(tmp_path / "i.npy", np.arange(6 * 3).reshape(6, 3))
    error("must be floating point, got int64", src=tmp_path / "i.npy", vocab=tmp_path / "v.txt")
    np.save(tmp_path / "f.npy", np.asfortranarray(vecs))
    error("Fortran order", src=tmp_path / "f.npy", vocab=tmp_path / "v.txt")
    np.save(tmp_path / "one.npy", vecs[0])
    error("must be 2-D", src=tmp_path / "one.npy", vocab=tmp_path / "v.txt")


def test_format_errors_name_the_file_and_the_fix(tmp_path, files):
    def error(src, *needles, **kwargs):
        with pytest.raises(sc.SparsecodeError) as exc:
            convert_embeddings(src, tmp_path / "x.h5", **kwargs)
        msg = str(exc.value)
        assert "\n" not in msg
        for needle in needles:
            assert needle in msg

    glove, _ = files["glove"]
    error(glove, "looks like glove, not word2vec; pass format glove", format="word2vec")
    error(files["word2vec"][0], "looks like word2vec, not word2vec-bin", format="word2vec-bin")
    error(glove, "format must be one of", format="csv")
    error(glove, "vocab is only for .npy input", vocab=glove)
    error(glove, "limit must be at least 1", limit=0)
    error(tmp_path / "missing.txt", "missing.txt: file not found")
    (tmp_path / "empty.txt").write_text("")
    error(tmp_path / "empty.txt", "file is empty")
    error(tmp_path, "is a directory")
    error(write_h5(tmp_path / "e.h5", words=["a"], vectors=np.ones((1, 2))), "is already HDF5")
    (tmp_path / "prose.txt").write_text("This is not an embeddings file.\nIt has words only.\n")
    error(tmp_path / "prose.txt", "cannot tell its format from the content", "pass format")
    error(tmp_path / "prose.txt", "prose.txt: 2 of 2 entries are malformed, the first line 1 ('is' is not a number); "
          "check that it is glove, or pass another format", format="glove")
    (tmp_path / "x.h5").write_text("taken")
    error(glove, "already exists; pass force=True")
    assert (tmp_path / "x.h5").read_text() == "taken"


def test_streaming_keeps_memory_bounded(tmp_path):
    """Peak Python memory grows with the words kept (to drop repeats), not with the vectors: four
    times the rows cost far less than the matrix they add. (word2vec binary: quick to write; every
    reader feeds the same block writer.)"""
    rng = np.random.default_rng(0)
    dim = 300

    def peak_converting(n: int) -> int:
        path = tmp_path / f"{n}.bin"
        with open(path, "wb") as fh:
            fh.write(f"{n} {dim}\n".encode())
            vectors = rng.normal(size=(n, dim)).astype("<f4")
            fh.writelines(f"w{i} ".encode() + row.tobytes() for i, row in enumerate(vectors))
        tracemalloc.start()
        try:
            convert_embeddings(path, tmp_path / f"{n}.h5", chunk_rows=1000)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak_converting(5_000), peak_converting(20_000)
    added_matrix = (20_000 - 5_000) * dim * 4
    assert large - small < added_matrix / 4, f"peak grew {(large - small) / 1e6:.1f} MB for {added_matrix / 1e6:.1f} MB more vectors"
    assert len(sc.load_embeddings(tmp_path / "20000.h5")) == 20_000


def test_progress_reports_bytes_of_the_file(tmp_path, files):
    path, _ = files["glove.gz"]
    calls = []
    convert_embeddings(path, tmp_path / "out.h5", progress=lambda done, size, words: calls.append((done, size, words)))
    size = path.stat().st_size
    assert calls[-1] == (size, size, 5000)
    assert all(a[0] <= b[0] and a[2] <= b[2] for a, b in zip(calls, calls[1:]))
