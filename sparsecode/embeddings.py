"""Reading and validating ``words``/``vectors`` HDF5 embedding files.

An embeddings file holds two datasets:

- ``words``: N UTF-8 strings (variable- or fixed-length, stored as ``str`` or ``bytes``);
- ``vectors``: an (N, D) floating-point array, row i the vector of ``words[i]``.

Everything is validated here, once, at the boundary: every problem becomes a
:class:`~sparsecode.errors.SparsecodeError` whose one-line message names the file and the fix.
Code past this module trusts its inputs. Duplicate words keep their first occurrence (with a
warning). Vectors are read in row chunks, so a file larger than memory can be encoded.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Iterator

import h5py
import numpy as np

from .atomic import atomic_output
from .errors import SparsecodeError, first_line

#: Rows read from disk at a time when streaming (about 50 MB of float32 at D=300).
DEFAULT_CHUNK_ROWS = 65_536


class DuplicateWordsWarning(UserWarning):
    """Some words occur more than once; the first occurrence of each was kept."""


@dataclass
class Embeddings:
    """Word vectors held in memory."""

    words: list[str]
    """N unique words, in file order."""
    vectors: np.ndarray
    """(N, D) float32, row i the vector of ``words[i]``."""
    path: str
    """The file they were read from."""

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)


#: What to do with a file that is not readable HDF5, by what the reader wanted.
NOT_HDF5_ADVICE = {
    "embeddings": "the file is truncated or corrupt: copy or convert it again",
    "codes": "give a codes file made by 'sparsecode encode'",
}


def _open_h5(path: str | os.PathLike, wanted: str = "embeddings") -> h5py.File:
    """Open an HDF5 file for reading, turning every way that can fail into one clear line
    (``wanted``, "embeddings" or "codes", picks the advice)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SparsecodeError(f"{path}: file not found; check the path")
    if os.path.isdir(path):
        raise SparsecodeError(f"{path}: is a directory, not an HDF5 file; give the .h5 file inside it")
    if os.path.getsize(path) == 0:
        raise SparsecodeError(f"{path}: file is empty; it is not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        what = "not a sparsecode codes file, nor any HDF5 file" if wanted == "codes" else "not a readable HDF5 file"
        raise SparsecodeError(f"{path}: {what} (wrong format or truncated: {first_line(exc)}); {NOT_HDF5_ADVICE[wanted]}") from None


def decode_words(raw: np.ndarray, path: str, dataset: str = "words", first: int = 0) -> list[str]:
    """Decode an array of ``str``/``bytes`` into Python strings, strictly as UTF-8 (``first``: the
    entry number of ``raw[0]``, for the error message)."""
    words: list[str] = []
    for i, w in enumerate(raw.tolist(), first):
        if isinstance(w, bytes):
            try:
                w = w.decode("utf-8")
            except UnicodeDecodeError:
                raise SparsecodeError(
                    f"{path}: '{dataset}' entry {i} is not valid UTF-8 ({w[:20]!r}); "
                    "re-encode the words as UTF-8"
                ) from None
        elif not isinstance(w, str):
            raise SparsecodeError(f"{path}: '{dataset}' must hold strings, found {type(w).__name__} at entry {i}")
        words.append(w)
    return words


def _check_layout(f: h5py.File, path: str) -> tuple[int, int]:
    """(N, D) of an embeddings file whose 'words' and 'vectors' datasets have the layout's shapes
    and types; every departure from it is one clear line."""
    for name in ("words", "vectors"):
        if name not in f:
            raise SparsecodeError(
                f"{path}: no dataset '{name}'; an embeddings file needs 'words' (N strings) "
                "and 'vectors' (N x D floats)"
            )
        if not isinstance(f[name], h5py.Dataset):
            raise SparsecodeError(f"{path}: '{name}' is a group, not a dataset")
    vec = f["vectors"]
    if vec.ndim != 2:
        raise SparsecodeError(
            f"{path}: 'vectors' must be 2-D (N words x D dimensions), got shape {tuple(vec.shape)}"
        )
    if vec.dtype.kind in ("i", "u"):
        warnings.warn(f"{path}: 'vectors' are integers ({vec.dtype}); converted to float32", stacklevel=5)
    elif vec.dtype.kind != "f":
        raise SparsecodeError(
            f"{path}: 'vectors' must be numbers (floating point or integer), got {vec.dtype}; store them as float32"
        )
    n, d = vec.shape
    if n == 0 or d == 0:
        raise SparsecodeError(f"{path}: 'vectors' is empty (shape {tuple(vec.shape)})")
    wds = f["words"]
    if wds.ndim != 1:
        raise SparsecodeError(f"{path}: 'words' must be 1-D, got shape {tuple(wds.shape)}")
    if wds.dtype.kind not in ("S", "U", "O"):
        raise SparsecodeError(f"{path}: 'words' must hold strings, got {wds.dtype}")
    if wds.shape[0] != n:
        raise SparsecodeError(
            f"{path}: 'words' has {wds.shape[0]} entries but 'vectors' has {n} rows; they must match"
        )
    return n, d


class EmbeddingFile:
    """An open, validated embeddings file whose vectors are read on demand.

    Opening checks the structure (datasets present, shapes, dtypes, non-empty) and reads the words;
    the vectors stay on disk until :meth:`iter_chunks` or :meth:`read_all` asks for them, and those
    check every row they read for NaN/Inf. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike, keep_words: bool = False):
        """``keep_words``: keep the decoded words from the pass that checks them, for a caller that
        needs them all (encoding, loading); otherwise only their hashes are kept, 8 bytes a word,
        and :attr:`words` reads them again when asked."""
        self.path = os.fspath(path)
        self._file = _open_h5(self.path)
        try:
            self._validate_and_read_words(keep_words)
        except BaseException:
            self._file.close()
            raise

    def _validate_and_read_words(self, keep_words: bool) -> None:
        self.n_rows, self.dim = _check_layout(self._file, self.path)
        self._words: list[str] | None = None
        self._keep: np.ndarray | None = None  # the entries kept, when some words are duplicates

        # Every word is decoded (strictly, as UTF-8) a chunk at a time and only its hash is kept
        # (and the word, with keep_words), so that memory holds 8 bytes per word, not the words:
        # equal hashes are then checked on the words themselves. The first occurrence is kept.
        hashes = np.empty(self.n_rows, dtype=np.int64)
        kept: list[str] = []
        for start, words in self._iter_words():
            hashes[start : start + len(words)] = [hash(w) for w in words]
            if keep_words:
                kept += words
        duplicates = self._duplicates(hashes)
        if duplicates:
            self._keep = np.setdiff1d(np.arange(self.n_rows), duplicates)
            warnings.warn(
                f"{self.path}: {len(duplicates)} duplicate word(s) (first: {self._read_words([duplicates[0]])[0]!r}); "
                "kept the first occurrence of each",
                DuplicateWordsWarning,
                stacklevel=3,
            )
        if keep_words:
            self._words = kept if self._keep is None else [kept[i] for i in self._keep.tolist()]

    def _duplicates(self, hashes: np.ndarray) -> list[int]:
        """The entries whose word occurs at an earlier entry, from every entry's hash: only entries
        that share a hash are read again and compared as words."""
        order = np.argsort(hashes, kind="stable")
        same = hashes[order[1:]] == hashes[order[:-1]]
        if not same.any():
            return []
        suspects = np.unique(np.concatenate([order[1:][same], order[:-1][same]]))
        first: dict[str, int] = {}
        return [i for i, w in zip(suspects.tolist(), self._read_words(suspects)) if first.setdefault(w, i) != i]

    #: Words read at a time.
    _WORD_CHUNK = 1 << 16

    def _iter_words(self) -> Iterator[tuple[int, list[str]]]:
        """``(first, words)`` per chunk of every entry of 'words' (duplicates included), decoded."""
        wds = self._file["words"]
        for start in range(0, self.n_rows, self._WORD_CHUNK):
            try:
                raw = wds[start : start + self._WORD_CHUNK]
            except OSError as exc:
                raise SparsecodeError(f"{self.path}: cannot read 'words' (truncated file? {first_line(exc)})") from None
            yield start, decode_words(np.asarray(raw), self.path, first=start)

    def _read_words(self, entries) -> list[str]:
        """The words at sorted entry numbers ``entries`` (of the file, duplicates included)."""
        entries = np.asarray(entries, dtype=np.int64)
        out: list[str] = []
        for start, words in self._iter_words() if len(entries) else ():
            if start > entries[-1]:
                break
            lo, hi = np.searchsorted(entries, [start, start + len(words)])
            out += [words[i - start] for i in entries[lo:hi].tolist()]
        return out

    @property
    def words(self) -> list[str]:
        """The N unique words, in file order (read when first asked for: training does not need them)."""
        if self._words is None:
            words = [w for _, chunk in self._iter_words() for w in chunk]
            self._words = words if self._keep is None else [words[i] for i in self._keep.tolist()]
        return self._words

    def word(self, i: int) -> str:
        """Kept word number ``i``."""
        if self._words is not None:
            return self._words[i]
        return self._read_words([i if self._keep is None else self._keep[i]])[0]

    def __len__(self) -> int:
        return self.n_rows if self._keep is None else len(self._keep)

    def __enter__(self) -> "EmbeddingFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def _read_rows(self, start: int, stop: int) -> np.ndarray:
        try:
            return np.asarray(self._file["vectors"][start:stop], dtype=np.float32)
        except OSError as exc:
            raise SparsecodeError(
                f"{self.path}: cannot read 'vectors' rows {start}-{stop} (truncated file? {first_line(exc)})"
            ) from None

    def iter_chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first, vectors)`` per chunk: ``vectors`` (n, D) float32 are the kept words
        ``self.words[first : first + n]``, in order. Raises on the first chunk with NaN/Inf rows,
        after counting them over the whole file so the message says how many there are."""
        kept_before = 0
        for start in range(0, self.n_rows, chunk_rows):
            stop = min(start + chunk_rows, self.n_rows)
            block = self._read_rows(start, stop)
            if self._keep is not None:
                lo, hi = np.searchsorted(self._keep, [start, stop])
                block = block[self._keep[lo:hi] - start]
            bad = _bad_rows(block)
            if bad.any():
                self._raise_bad_rows(kept_before + int(np.flatnonzero(bad)[0]), chunk_rows)
            yield kept_before, block
            kept_before += block.shape[0]

    def _raise_bad_rows(self, first_bad: int, chunk_rows: int) -> None:
        """Count the NaN/Inf and all-zero rows over the whole file and raise one clear error."""
        nonfinite = zero = 0
        for start in range(0, self.n_rows, chunk_rows):
            block = self._read_rows(start, min(start + chunk_rows, self.n_rows))
            finite = np.isfinite(block).all(axis=1)
            nonfinite += int((~finite).sum())
            zero += int((finite & ~block.any(axis=1)).sum())
        word = self.word(first_bad)
        if nonfinite:
            raise SparsecodeError(
                f"{self.path}: {nonfinite} row(s) of 'vectors' contain NaN or Inf"
                f"{f' and {zero} are all zeros' if zero else ''} (first bad row: word {word!r}); remove or fix those rows"
            )
        raise SparsecodeError(
            f"{self.path}: {zero} row(s) of 'vectors' are all zeros (first: word {word!r}); "
            "remove them: a zero vector has no direction to encode"
        )

    def read_rows(self, rows: np.ndarray, span: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
        """(K, D) float32 vectors of the kept words at ``rows`` (K,), sorted increasing.

        Read in contiguous runs of at most ``span`` file rows, keeping only the rows asked for, so
        memory holds the result and one run. Unlike :meth:`iter_chunks` this does not check the
        rows for NaN/Inf: it serves callers that have already streamed the file through it.
        """
        file_rows = np.asarray(rows, dtype=np.int64)
        if self._keep is not None:
            file_rows = self._keep[file_rows]
        out = np.empty((len(file_rows), self.dim), dtype=np.float32)
        i = 0
        while i < len(file_rows):
            start = int(file_rows[i])
            j = int(np.searchsorted(file_rows, start + span, side="left"))
            stop = int(file_rows[j - 1]) + 1
            block = self._read_rows(start, stop)
            out[i:j] = block if j - i == stop - start else block[file_rows[i:j] - start]
            i = j
        return out

    def read_all(self) -> Embeddings:
        """Read every kept row into memory (validated)."""
        out = np.empty((len(self), self.dim), dtype=np.float32)
        for first, block in self.iter_chunks():
            out[first : first + block.shape[0]] = block
        return Embeddings(words=self.words, vectors=out, path=self.path)


def _bad_rows(block: np.ndarray) -> np.ndarray:
    """(n,) True for rows with NaN/Inf or all zeros."""
    return ~np.isfinite(block).all(axis=1) | ~block.any(axis=1)


def embeddings_from_array(vectors, words: list[str] | None = None, what: str = "embeddings") -> Embeddings:
    """Validated :class:`Embeddings` of (N, D) vectors held in memory: a numpy array, a tensor, or
    any array-like (a list of lists), checked as a file's rows are (two dimensions, no NaN/Inf or
    all-zero row); without ``words`` they are the row numbers "0", "1", ..."""
    try:
        x = vectors.detach().cpu().numpy() if hasattr(vectors, "detach") else np.asarray(vectors)
    except (ValueError, TypeError) as exc:  # rows of different lengths, say
        raise SparsecodeError(f"{what}: not an (N, D) array of vectors ({first_line(exc, 100)})") from None
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise SparsecodeError(f"{what}: expected a non-empty (N, D) array of vectors, got shape {tuple(x.shape)}")
    if not np.issubdtype(x.dtype, np.number):
        raise SparsecodeError(f"{what}: expected numbers, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    bad = _bad_rows(x)
    if bad.any():
        raise SparsecodeError(f"{what}: {int(bad.sum())} row(s) contain NaN or Inf or are all zeros (first: row "
                              f"{int(np.flatnonzero(bad)[0])}); fix or drop them")
    if words is None:
        words = [str(i) for i in range(x.shape[0])]
    elif len(words) != x.shape[0]:
        raise SparsecodeError(f"{what}: {len(words)} words for {x.shape[0]} vectors")
    return Embeddings(words=list(words), vectors=x, path="(in memory)")


def is_keyed_vectors(data) -> bool:
    """Whether ``data`` looks like gensim's ``KeyedVectors``: words in ``index_to_key``, their
    vectors in ``vectors`` (told by those two attributes: gensim is never imported)."""
    return hasattr(data, "index_to_key") and hasattr(data, "vectors")


def embeddings_in_memory(data, what: str = "embeddings") -> Embeddings:
    """Validated :class:`Embeddings` of what a caller holds in memory: :class:`Embeddings` (as they
    are), a gensim ``KeyedVectors`` (its words and vectors, see :func:`is_keyed_vectors`), or a (N,
    D) array-like whose words are the row numbers (see :func:`embeddings_from_array`)."""
    if isinstance(data, Embeddings):
        return data
    if is_keyed_vectors(data):
        words = list(data.index_to_key)
        bad = next((w for w in words if not isinstance(w, str)), None)
        if bad is not None:
            raise SparsecodeError(f"{what}: the keys must be words (strings), found {type(bad).__name__} {bad!r}")
        return embeddings_from_array(data.vectors, words, what=what)
    return embeddings_from_array(data, what=what)


class EmbeddingWriter:
    """Appends blocks of words and vectors to a new file in the embeddings layout.

    Both datasets are resizable and grow on disk, so a file of any size is written with memory
    bounded by the blocks given to :meth:`append`. The caller owns the open file (usually the
    temporary of :func:`~sparsecode.atomic.atomic_output`) and validates what it appends.
    """

    def __init__(self, f: h5py.File, dim: int):
        self.dim = dim
        self.n = 0
        self.words = f.create_dataset("words", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype("utf-8"),
                                      chunks=(4096,))
        # Chunks of about 1 MiB: large enough for fast sequential I/O, small enough to read a few rows.
        self.vectors = f.create_dataset("vectors", shape=(0, dim), maxshape=(None, dim), dtype=np.float32,
                                        chunks=(max(1, (1 << 18) // dim), dim))

    def append(self, words: list[str], vectors: np.ndarray) -> None:
        """Add ``len(words)`` rows; ``vectors`` is (len(words), D)."""
        m = len(words)
        if m == 0:
            return
        self.words.resize((self.n + m,))
        self.vectors.resize((self.n + m, self.dim))
        self.words[self.n :] = np.array(words, dtype=object)
        self.vectors[self.n :] = np.asarray(vectors, dtype=np.float32)
        self.n += m


def write_embeddings(path: str | os.PathLike, words: list[str], vectors: np.ndarray) -> None:
    """Write a ``words``/``vectors`` file (used to build sample data and by tests)."""
    with atomic_output(path, force=True) as tmp, h5py.File(tmp, "w") as f:
        EmbeddingWriter(f, vectors.shape[1]).append(words, vectors)
