"""The codes file: sparse codes in CSR layout plus a per-unit report, written and read back.

Layout (HDF5)::

    words                    (N,) UTF-8 strings
    codes/indptr             (N+1,) int64     row i's entries are indptr[i]:indptr[i+1]
    codes/indices            (nnz,) int32     unit ids, increasing within a row
    codes/data               (nnz,) float32   activations (> 0; either sign for signed pursuit codes)
    codes.attrs["shape"]     (N, H)
    dimensions/top_words     (H, M) strings   each unit's M strongest words ("" pads)
    dimensions/top_values    (H, M) float32   their activations (0 pads)
    dimensions/frequency     (H,) int64       how many words use the unit
    dimensions/names         (H,) strings     each unit's name from WordNet (:mod:`sparsecode.naming`)
    attrs                    the training config (one attribute per setting, and ``config_json``)
                             and the encode settings (``encode_k``, ``encode_method``, ``encode_nonneg``),
                             ``run_dir`` (absolute) and ``model_fingerprint`` (of the weights that
                             made the codes: :func:`sparsecode.modelfile.weights_fingerprint`)

A code ``z`` (row i as a dense H-vector) reconstructs the word's vector through the model:
``x ≈ (z @ W_dec + b_dec) * input_scale + input_mean`` for a single-layer model (see
:mod:`sparsecode.model` for models with hidden layers).

Codes of ``encode --method omp`` without ``--nonneg`` have coefficients of either sign. They are
reported by value, like the others: a unit's top words are its largest coefficients (its most
positive users, so negative values appear only for a unit with fewer than M positive ones), a
word's active units are listed largest first, and ``frequency`` counts the non-zero entries.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator

import h5py
import numpy as np

from .atomic import atomic_output
from .embeddings import _open_h5, decode_words
from .errors import SparsecodeError, first_line
from .naming import name_units


class UnknownWordError(SparsecodeError, KeyError):
    """A word that is not in the vocabulary (a ``KeyError``, as gensim raises)."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class Codes:
    """A codes file in memory."""

    words: list[str]
    """N words, row i the code of ``words[i]``."""
    indptr: np.ndarray
    """(N+1,) int64 CSR row pointers."""
    indices: np.ndarray
    """(nnz,) int32 unit ids."""
    data: np.ndarray
    """(nnz,) float32 activations."""
    n_units: int
    """H, the number of hidden units."""
    top_words_table: list[list[str]]
    """H lists of each unit's strongest words (padding removed)."""
    top_values_table: np.ndarray
    """(H, M) float32 their activations (0 pads)."""
    frequency: np.ndarray
    """(H,) int64 how many words use each unit."""
    attrs: dict = field(default_factory=dict)
    """Training config and encode settings."""
    path: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.words), self.n_units)

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    @cached_property
    def word_index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    def index_of(self, word: str) -> int:
        """Row of ``word``; an unknown word raises :class:`UnknownWordError` with close spellings."""
        try:
            return self.word_index[word]
        except KeyError:
            pass
        close = close_words(word, self.words)
        hint = f"; did you mean {', '.join(repr(w) for w in close)}?" if close else ""
        raise UnknownWordError(f"{self.path or 'codes'}: word {word!r} is not in the vocabulary{hint}")

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Units (int32) and activations (float32) of row ``i``."""
        a, b = self.indptr[i], self.indptr[i + 1]
        return self.indices[a:b], self.data[a:b]

    def active_units(self, word: str) -> list[tuple[int, float]]:
        """The units a word's code uses, as ``(unit, activation)``, strongest first."""
        units, values = self.row(self.index_of(word))
        order = np.argsort(-values, kind="stable")
        return [(int(units[j]), float(values[j])) for j in order]

    def top_words(self, unit: int) -> list[tuple[str, float]]:
        """A unit's strongest words as ``(word, activation)`` pairs, strongest first."""
        self.check_unit(unit)
        return list(zip(self.top_words_table[unit], map(float, self.top_values_table[unit])))

    def unit_words(self, unit: int) -> list[tuple[str, float]]:
        """Every word that uses ``unit``, as ``(word, activation)``, strongest first (ties in
        vocabulary order): read from the codes themselves, where :meth:`top_words` is the stored
        report of the strongest few."""
        self.check_unit(unit)
        entries = np.flatnonzero(self.indices == unit)
        rows = np.searchsorted(self.indptr, entries, side="right") - 1
        values = self.data[entries]
        order = np.lexsort((rows, -values))
        return [(self.words[rows[j]], float(values[j])) for j in order]

    def check_unit(self, unit: int) -> None:
        if not 0 <= unit < self.n_units:
            raise SparsecodeError(
                f"{self.path or 'codes'}: unit {unit} is out of range; units are 0 to {self.n_units - 1}"
            )

    def dead_units(self) -> np.ndarray:
        """Ids of the units no word uses."""
        return np.flatnonzero(self.frequency == 0)

    def l0(self) -> np.ndarray:
        """(N,) number of active units per word."""
        return np.diff(self.indptr)

    def to_torch(self, device="cpu"):
        """The (N, H) codes as a ``torch.sparse_csr_tensor``."""
        return csr_tensor(self.indptr, self.indices, self.data, self.shape, device)

    def to_scipy(self):
        """The (N, H) codes as a ``scipy.sparse.csr_matrix``."""
        try:
            import scipy.sparse
        except ImportError:
            raise SparsecodeError("Codes.to_scipy needs scipy, which is not installed; pip install scipy") from None
        return scipy.sparse.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)

    def dense(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Dense (n, H) float32 codes of ``rows`` (default: all rows; mind the memory)."""
        rows = np.arange(len(self.words)) if rows is None else np.asarray(rows)
        starts, lens = self.indptr[rows], self.indptr[rows + 1] - self.indptr[rows]
        out_rows = np.repeat(np.arange(len(rows)), lens)
        pos = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))
        out = np.zeros((len(rows), self.n_units), dtype=np.float32)
        out[out_rows, self.indices[pos]] = self.data[pos]
        return out


def csr_tensor(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, shape: tuple[int, int], device="cpu"):
    """A ``torch.sparse_csr_tensor`` from validated CSR arrays (without torch's beta-state warnings)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(np.ascontiguousarray(indptr, dtype=np.int64)),
            torch.from_numpy(np.ascontiguousarray(indices, dtype=np.int64)),
            torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)),
            size=shape,
            device=device,
            check_invariants=False,  # load_codes has checked them
        )


def close_words(word: str, vocabulary: list[str], n: int = 5) -> list[str]:
    """Up to ``n`` vocabulary words spelled like ``word`` (case-insensitive first, then difflib)."""
    lower = word.lower()
    exact_case = [w for w in vocabulary if w.lower() == lower and w != word]
    if exact_case:
        return exact_case[:n]
    # difflib over the whole vocabulary is slow; words of similar length are the only candidates.
    candidates = [w for w in vocabulary if abs(len(w) - len(word)) <= 2]
    return difflib.get_close_matches(word, candidates, n=n, cutoff=0.75)


def _not_codes(path: str, why: str) -> SparsecodeError:
    return SparsecodeError(f"{path}: not a sparsecode codes file ({why}); create one with 'sparsecode encode'")


def load_codes(path: str | os.PathLike) -> Codes:
    """Read and validate a codes file written by :class:`CodesWriter` (:func:`sparsecode.encoding.encode_file`)."""
    path = os.fspath(path)
    with _open_h5(path, "codes") as f:
        for name in ("words", "codes/indptr", "codes/indices", "codes/data", "dimensions/top_words",
                     "dimensions/top_values", "dimensions/frequency"):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise _not_codes(path, f"no dataset '{name}'")
        try:
            shape = tuple(int(s) for s in f["codes"].attrs["shape"])
            words = decode_words(np.asarray(f["words"][...]), path)
            indptr = np.asarray(f["codes/indptr"][...], dtype=np.int64)
            indices = np.asarray(f["codes/indices"][...], dtype=np.int32)
            data = np.asarray(f["codes/data"][...], dtype=np.float32)
            top_words = [decode_words(np.asarray(r), path, "dimensions/top_words") for r in f["dimensions/top_words"][...]]
            top_values = np.asarray(f["dimensions/top_values"][...], dtype=np.float32)
            frequency = np.asarray(f["dimensions/frequency"][...], dtype=np.int64)
            attrs = {k: _attr(v) for k, v in f.attrs.items()}
        except KeyError:
            raise _not_codes(path, "attribute 'shape' missing on 'codes'") from None
        except (OSError, ValueError, TypeError) as exc:
            raise _not_codes(path, f"unreadable: {first_line(exc)}") from None

    if len(shape) != 2:
        raise _not_codes(path, f"'shape' should be (N, H), got {shape}")
    n, h = shape
    nnz = indptr[-1] if len(indptr) else -1
    problems = [
        (len(words) != n, f"{len(words)} words but shape says {n} rows"),
        (len(indptr) != n + 1, f"indptr has {len(indptr)} entries, expected {n + 1}"),
        (len(indptr) and indptr[0] != 0, "indptr does not start at 0"),
        (len(indptr) > 1 and bool(np.any(np.diff(indptr) < 0)), "indptr decreases"),
        (nnz != len(indices) or nnz != len(data), f"indptr ends at {nnz} but there are {len(indices)} indices and {len(data)} values"),
        (len(indices) and (indices.min() < 0 or indices.max() >= h), f"unit ids outside 0..{h - 1}"),
        (top_values.ndim != 2 or top_values.shape[0] != h or len(top_words) != h, "dimensions/ do not match H"),
        (frequency.shape != (h,), "dimensions/frequency does not match H"),
    ]
    for bad, why in problems:
        if bad:
            raise _not_codes(path, f"inconsistent: {why}")
    return Codes(words, indptr, indices, data, h, _unpadded(top_words), top_values, frequency, attrs, path)


def _unpadded(top_words) -> list[list[str]]:
    """Each unit's top words without the "" that pads the file's (H, M) table."""
    return [[w for w in row if w] for row in top_words]


def _top_word_table(top_rows: np.ndarray, words: list[str]) -> np.ndarray:
    """(H, M) row ids of each unit's top words (-1 pads) as the words themselves ("" pads)."""
    if not len(words):
        return np.full(top_rows.shape, "", dtype=object)
    return np.where(top_rows >= 0, np.array(words, dtype=object)[np.maximum(top_rows, 0)], "")


class _Rows:
    """CSR rows of codes added a batch at a time, in row order: the row pointers and the count of
    entries; where the entries go is the subclass's :meth:`_append`."""

    def __init__(self, n_words: int, n_units: int, indptr):
        self.n_words, self.n_units, self.indptr, self.nnz = n_words, n_units, indptr, 0
        self.indptr[0] = 0

    def add_rows(self, first: int, counts: np.ndarray, indices: np.ndarray, data: np.ndarray) -> None:
        """Rows ``first`` on: ``counts[i]`` entries each, their unit ids and activations in CSR order."""
        self._append(indices.astype(np.int32, copy=False), data.astype(np.float32, copy=False))
        self.indptr[first + 1 : first + 1 + len(counts)] = self.nnz + np.cumsum(counts)
        self.nnz += len(indices)

    def _append(self, indices: np.ndarray, data: np.ndarray) -> None:
        raise NotImplementedError


class CodesWriter(_Rows):
    """Writes a codes file in the layout above as encoding produces it: the rows a batch at a time
    (:meth:`add_rows`, growing on disk), then :meth:`finish` with the words, the unit report and
    the attributes. :meth:`create` makes one whose file appears only once complete."""

    def __init__(self, f: h5py.File, n_words: int, n_units: int):
        self.file = f
        grp = f.create_group("codes")
        grp.attrs["shape"] = np.array([n_words, n_units], dtype=np.int64)
        super().__init__(n_words, n_units, grp.create_dataset("indptr", shape=(n_words + 1,), dtype=np.int64))
        self.indices = grp.create_dataset("indices", shape=(0,), maxshape=(None,), dtype=np.int32, chunks=(1 << 16,))
        self.data = grp.create_dataset("data", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(1 << 16,))

    @classmethod
    @contextlib.contextmanager
    def create(cls, path: str | os.PathLike, n_words: int, n_units: int, force: bool = False) -> Iterator["CodesWriter"]:
        """A writer of the codes file ``path``, written under a temporary name and renamed at the
        end of the block (:func:`~sparsecode.atomic.atomic_output`); ``force`` overwrites."""
        with atomic_output(path, force=force) as tmp, h5py.File(tmp, "w") as f:
            yield cls(f, n_words, n_units)

    def _append(self, indices: np.ndarray, data: np.ndarray) -> None:
        m = len(indices)
        self.indices.resize((self.nnz + m,))
        self.data.resize((self.nnz + m,))
        self.indices[self.nnz :] = indices
        self.data[self.nnz :] = data

    def finish(self, words: list[str], units, attrs: dict) -> None:
        """Write the words, the unit report ``units`` (a :class:`~sparsecode.report.UnitSummary`)
        with each unit's name, and the root attributes."""
        dims = self.file.create_group("dimensions")
        str_dt = h5py.string_dtype("utf-8")
        table = _top_word_table(units.top_rows, words)
        dims.create_dataset("top_words", data=table, dtype=str_dt)
        labels = [n.label for n in name_units(_unpadded(table))]
        dims.create_dataset("names", data=np.array(labels, dtype=object), shape=(len(labels),), dtype=str_dt)
        dims.create_dataset("top_values", data=units.top_values)
        dims.create_dataset("frequency", data=units.frequency)
        self.file.create_dataset("words", data=np.array(words, dtype=object), dtype=str_dt)
        for key, value in attrs.items():
            self.file.attrs[key] = value


class CodesBuffer(_Rows):
    """The rows of :class:`CodesWriter` gathered in memory instead, finished as :class:`Codes`."""

    def __init__(self, n_words: int, n_units: int):
        super().__init__(n_words, n_units, np.zeros(n_words + 1, dtype=np.int64))
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []

    def _append(self, indices: np.ndarray, data: np.ndarray) -> None:
        self.parts.append((indices, data))

    def finish(self, words: list[str], units, attrs: dict) -> Codes:
        """The codes, with the words, the unit report ``units`` and the attributes a file would hold."""
        empty = (np.zeros(0, np.int32), np.zeros(0, np.float32))
        indices, data = (np.concatenate(col) for col in zip(*(self.parts or [empty])))
        return Codes(list(words), self.indptr, indices, data, self.n_units,
                     _unpadded(_top_word_table(units.top_rows, words)), np.asarray(units.top_values, dtype=np.float32),
                     np.asarray(units.frequency, dtype=np.int64), attrs, "")


def check_same_model(codes: Codes, model, run_dir: str | os.PathLike) -> None:
    """Refuse codes that another model made: the fingerprint of the weights recorded by
    ``encode`` against that of ``model`` (loaded from ``run_dir``). Codes written before the
    fingerprint was recorded are taken on trust, with a warning."""
    recorded = codes.attrs.get("model_fingerprint")
    where = codes.path or "codes"
    if recorded is None:
        warnings.warn(f"{where}: records no fingerprint of the model that made it (written by an older sparsecode); "
                      f"taken to come from {run_dir}: encode again to have that checked", stacklevel=3)
        return
    actual = model.fingerprint()
    if recorded != actual:
        raise SparsecodeError(
            f"{where}: made by another model than the one in {run_dir} (weights fingerprint {recorded}, the run's "
            f"{actual}); give the codes that 'sparsecode encode {run_dir} ...' wrote, or encode again with it"
        )


def _attr(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def config_attrs(config: dict) -> dict:
    """Training config as HDF5 attributes: scalars as they are, everything as ``config_json``."""
    attrs = {"config_json": json.dumps(config)}
    for key, value in config.items():
        if isinstance(value, (bool, int, float, str)):
            attrs[key] = value
    return attrs
