"""Codes -> the formats other tools read: word2vec text, scipy's CSR ``.npz``, a dense HDF5.

- ``word2vec``: text, ``N H`` then one line per word, ``word v1 ... vH``, as gensim's
  ``KeyedVectors.load_word2vec_format`` reads it (gzipped when the name ends in ``.gz``). Zeros are
  written ``0``, activations as the shortest decimal that reads back as the same float32.
- ``npz``: the layout of ``scipy.sparse.save_npz`` for a CSR matrix (``data``, ``indices``,
  ``indptr``, ``shape``, ``format``), so ``scipy.sparse.load_npz`` reads it, plus ``words``, an
  (N,) unicode array; ``numpy.load`` reads everything without pickle.
- ``dense-h5``: a ``words``/``vectors`` embeddings file, ``vectors`` the (N, H) float32 codes,
  which ``sparsecode`` (``load_embeddings``, ``train``) and any HDF5 reader can read.

Each is written row block by row block from the CSR arrays (the dense forms never whole in
memory) under a temporary name, and renamed when complete.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
from pathlib import Path
from typing import Callable, Iterator

import h5py
import numpy as np

from .atomic import atomic_output, check_output
from .codes import Codes, load_codes
from .embeddings import EmbeddingWriter
from .errors import SettingError, need

#: Accepted values of ``format``; ``auto`` chooses by the output's file name.
EXPORT_FORMATS = ("auto", "word2vec", "npz", "dense-h5")
#: File name endings that ``auto`` recognises.
SUFFIXES = {".txt": "word2vec", ".vec": "word2vec", ".txt.gz": "word2vec", ".vec.gz": "word2vec",
            ".npz": "npz", ".h5": "dense-h5", ".hdf5": "dense-h5"}
#: Bytes of dense rows built at a time.
BLOCK_BYTES = 1 << 26


def resolve_export_format(out: str | os.PathLike, fmt: str) -> str:
    need(fmt in EXPORT_FORMATS, "format", "{format} must be one of {names} (got {got!r})",
         names=", ".join(EXPORT_FORMATS), got=fmt)
    if fmt != "auto":
        return fmt
    name = Path(out).name.lower()
    for suffix, kind in SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    raise SettingError("format", "{out}: cannot tell the format from the name; pass {format} word2vec, npz or dense-h5 "
                       "(or name it {names})", out=out, names=", ".join(SUFFIXES))


def export_codes(
    codes: str | os.PathLike | Codes,
    out: str | os.PathLike,
    format: str = "auto",
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write the codes file (or loaded :class:`Codes`) ``codes`` to ``out`` in ``format``.

    ``progress(rows_done, rows)`` is called per block. Returns a summary: out, format, words,
    units, nnz.
    """
    kind = resolve_export_format(out, format)
    check_output(out, force)
    if not isinstance(codes, Codes):
        codes = load_codes(codes)
    with atomic_output(out, force=force) as tmp:
        if kind == "word2vec":
            _write_word2vec(codes, tmp, Path(out).name.lower().endswith(".gz"), progress)
        elif kind == "npz":
            _write_npz(codes, tmp, progress)
        else:
            _write_dense_h5(codes, tmp, progress)
    n, h = codes.shape
    return {"out": str(Path(out)), "format": kind, "words": n, "units": h, "nnz": codes.nnz}


def _write_word2vec(codes: Codes, path: Path, gzipped: bool, progress) -> None:
    bad = [w for w in codes.words if not w or " " in w or "\n" in w]
    if bad:
        raise SettingError("format", "{path}: {count} word(s) are empty or hold a space or a line break (first: "
                           "{first!r}), which word2vec text cannot represent; use {format} npz or dense-h5",
                           path=codes.path or "codes", count=len(bad), first=bad[0])
    n, h = codes.shape
    with _open_text(path, gzipped) as fh:
        fh.write(f"{n} {h}\n")
        for i in range(n):
            units, values = codes.row(i)
            fields = ["0"] * h
            for unit, text in zip(units.tolist(), map(str, values)):
                fields[unit] = text  # str of a float32 scalar: shortest round-trip decimal
            fh.write(f"{codes.words[i]} {' '.join(fields)}\n")
            if progress is not None and (i + 1) % 4096 == 0:
                progress(i + 1, n)
    if progress is not None:
        progress(n, n)


@contextlib.contextmanager
def _open_text(path: Path, gzipped: bool) -> Iterator[io.TextIOBase]:
    """A UTF-8 text file for writing; gzip without a name or time in its header when ``gzipped``."""
    if not gzipped:
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            yield fh
        return
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as fh:
        yield fh


def _write_npz(codes: Codes, path: Path, progress) -> None:
    n, h = codes.shape
    with open(path, "wb") as fh:  # a file object: numpy would add ".npz" to a name
        np.savez_compressed(
            fh,
            indices=codes.indices,
            indptr=codes.indptr,
            format=np.bytes_(b"csr"),
            shape=np.array([n, h], dtype=np.int64),
            data=codes.data,
            words=np.array(codes.words, dtype=str),
        )
    if progress is not None:
        progress(n, n)


def _write_dense_h5(codes: Codes, path: Path, progress) -> None:
    n, h = codes.shape
    step = max(1, BLOCK_BYTES // (4 * h))
    with h5py.File(path, "w") as f:
        writer = EmbeddingWriter(f, h)
        for start in range(0, n, step):
            stop = min(start + step, n)
            writer.append(codes.words[start:stop], codes.dense(np.arange(start, stop)))
            if progress is not None:
                progress(stop, n)
        f.attrs["source"] = os.path.abspath(codes.path) if codes.path else ""
        f.attrs["content"] = "sparse codes as dense vectors (one column per unit)"
