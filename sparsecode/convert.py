"""Embeddings in the formats people have -> a ``words``/``vectors`` HDF5 file, streamed.

Formats (each may be gzipped; gzip is recognised by its magic bytes, not the file name):

- ``glove``: text, one word per line followed by its values, separated by single spaces, no header;
- ``word2vec``: the same with a first line ``COUNT DIM`` (word2vec ``-binary 0``, fastText ``.vec``);
- ``word2vec-bin``: the line ``COUNT DIM``, then per word ``word<space>`` and DIM little-endian
  float32 (word2vec ``-binary 1``); a newline before a word is skipped, as the C tool writes one;
- ``npy``: an (N, D) float array saved by ``numpy.save``, with a vocabulary file of N lines;
- ``fasttext``: another name for ``word2vec`` (fastText's ``.vec`` is word2vec text).

The text and binary conventions are those of gensim's ``KeyedVectors.load_word2vec_format``: a
line is stripped at its end and split on single spaces, the first field is the word. ``auto``
tells the format from the content: the npy magic bytes, a ``COUNT DIM`` header, and whether the
line after it is text or raw bytes.

The input is read once, as a stream, and the output written block by block, so memory holds one
block of vectors (65,536 rows) and the set of words seen, whatever the size of the file.
Malformed entries (wrong number of values, a value that is not a number, NaN or Inf, a word that
is not UTF-8) are skipped and counted, with their line numbers, in one warning; more than half of
the entries malformed is an error (the file is not what it was read as). A repeated word keeps its
first occurrence. A UTF-8 byte-order mark before the first line is skipped.

The other commands read any of these formats through :func:`readable_embeddings` (the file
itself when it is HDF5, else its conversion) and :func:`load_embeddings` (into memory).
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import warnings
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import h5py
import numpy as np

from .atomic import atomic_output, check_output
from .embeddings import (DEFAULT_CHUNK_ROWS, DuplicateWordsWarning, EmbeddingFile, EmbeddingWriter, Embeddings,
                         embeddings_in_memory)
from .errors import SettingError, SparsecodeError, first_line

#: Accepted values of ``format``; ``auto`` detects one of the others from the content.
FORMATS = ("auto", "glove", "word2vec", "word2vec-bin", "fasttext", "npy")
#: Malformed entries listed by line number in the warning (all of them are counted).
SHOWN_MALFORMED = 10
#: Bytes read at a time from a binary file.
READ_BLOCK = 1 << 20
#: A word2vec binary word longer than this means the file is not what it claims to be.
MAX_WORD_BYTES = 1 << 16

_GZIP_MAGIC = b"\x1f\x8b"
#: The UTF-8 byte-order mark some editors put before a text file's first line; it is skipped.
_UTF8_BOM = b"\xef\xbb\xbf"
_NPY_MAGIC = b"\x93NUMPY"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class MalformedEntriesWarning(UserWarning):
    """Some entries of the input could not be read as a word and its vector; they were skipped."""


#: Why an all-zero vector is skipped: it has no direction, and sparsecode's reader refuses it.
ALL_ZERO = "all-zero vector"


class Entry(NamedTuple):
    """One word and its vector, as read."""

    word: str
    vector: np.ndarray
    """(D,) float32, all finite."""


class Malformed(NamedTuple):
    """An entry that was skipped."""

    where: str
    """``line 7`` (text, 1-based, the header counted), ``entry 7`` (binary, 1-based) or ``row 7`` (npy, 0-based)."""
    problem: str


class Source:
    """An input file opened as a binary stream, gunzipped when it is gzip, that says how far it has read."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise SparsecodeError(f"{self.path}: file not found; check the path")
        if os.path.isdir(self.path):
            raise SparsecodeError(f"{self.path}: is a directory; give the embeddings file inside it")
        self.size = os.path.getsize(self.path)
        if self.size == 0:
            raise SparsecodeError(f"{self.path}: file is empty")
        try:
            self.raw = open(self.path, "rb")
        except OSError as exc:
            raise SparsecodeError(f"{self.path}: cannot be opened ({exc.strerror}); check its permissions") from None
        self.gzipped = self.raw.read(2) == _GZIP_MAGIC
        self.raw.seek(0)
        self.stream = gzip.GzipFile(fileobj=self.raw, mode="rb") if self.gzipped else self.raw
        with _reading(self.path):
            if self.stream.read(len(_UTF8_BOM)) != _UTF8_BOM:  # a byte-order mark is not part of the first word
                self.stream.seek(0)

    def position(self) -> int:
        """Bytes of the file (compressed, for gzip) read so far."""
        return self.raw.tell()

    def close(self) -> None:
        self.stream.close()
        self.raw.close()

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def _reading(path: str) -> Iterator[None]:
    """Turn a failure of the file or of gzip in the middle of a read into one clear line."""
    try:
        yield
    except (OSError, EOFError, zlib.error) as exc:
        raise SparsecodeError(f"{path}: cannot read it to the end ({first_line(exc)}); the file is truncated "
                              "or corrupt: download or copy it again") from None


# Detection -------------------------------------------------------------------------------------


def detect_format(path: str | os.PathLike) -> str | None:
    """``glove``, ``word2vec``, ``word2vec-bin`` or ``npy`` as judged by the content of ``path``,
    or ``None`` when the content fits none of them. An HDF5 file is an error: it needs no conversion."""
    with Source(path) as src, _reading(src.path):
        first = src.stream.readline(MAX_WORD_BYTES)
        if first.startswith(_NPY_MAGIC):
            return "npy"
        if first.startswith(_HDF5_MAGIC[:6]):
            raise SparsecodeError(f"{src.path}: is already HDF5; give it to 'sparsecode train' as it is "
                                  "(it needs datasets 'words' and 'vectors')")
        header = _header_of(first)
        if header is None:
            return "glove" if _text_entry(first, None) else None
        _, dim = header
        second = src.stream.read(4 * dim + MAX_WORD_BYTES)
        if not second.strip():
            return "word2vec"  # a header and nothing else; reading it says there are no vectors
        line = second.split(b"\n", 1)[0]
        if _text_entry(line, dim):
            return "word2vec"
        if _text_entry(line, 1):
            return "glove"  # one value per word: 'COUNT DIM' was a word (a number) and its value
        if _text_entry(line, None):  # text, but not as many values as the header says: never binary
            values = len(line.split()) - 1
            raise SparsecodeError(f"{src.path}: line 2 has {values} values but the header on line 1 "
                                  f"({first.decode().strip()!r}) says {dim}; correct the header ('COUNT {values}'), or remove "
                                  "it: without one the file reads as GloVe")
        return "word2vec-bin"


def _header_of(line: bytes) -> tuple[int, int] | None:
    """``(count, dim)`` if ``line`` is a word2vec header ``COUNT DIM``."""
    fields = line.split()
    if len(fields) != 2 or not all(f.isdigit() for f in fields):
        return None
    count, dim = int(fields[0]), int(fields[1])
    return (count, dim) if dim > 0 else None


def _text_entry(line: bytes, dim: int | None) -> bool:
    """Whether ``line`` reads as a word and ``dim`` numbers (any number of them when ``dim`` is None)."""
    try:
        fields = line.decode("utf-8").rstrip().split(" ")
    except UnicodeDecodeError:
        return False
    if len(fields) < 2 or (dim is not None and len(fields) != dim + 1):
        return False
    return _parse_values(fields[1:])[0] is not None


# Readers ---------------------------------------------------------------------------------------


def _parse_values(values: list[str]) -> tuple[np.ndarray | None, str]:
    """``(vector, "")`` or ``(None, why not)``."""
    try:
        with np.errstate(over="ignore"):
            vector = np.array(values, dtype=np.float32)
    except ValueError:
        bad = next(v for v in values if not _is_number(v))
        return None, f"{bad[:20]!r} is not a number"
    if not np.isfinite(vector).all():
        return None, "NaN or Inf value"
    return vector, ""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_header(src: Source) -> tuple[int, int]:
    line = src.stream.readline(MAX_WORD_BYTES)
    header = _header_of(line)
    if header is None:
        shown = line[:40].decode("utf-8", "replace").strip()
        raise SettingError("format", "{path}: the first line {shown!r} is not a word2vec header 'COUNT DIM'; "
                           "for text without a header use {format} glove (or auto)", path=src.path, shown=shown)
    return header


def read_text(src: Source, header: bool) -> Iterator[Entry | Malformed]:
    """Entries of a text file: word2vec/fastText (``header``) or GloVe (no header, D taken from
    the first well-formed line). With a header, exactly COUNT non-blank lines are read."""
    count, dim = _read_header(src) if header else (None, None)
    line_no = 1 if header else 0
    expected = "as the header says"  # where D comes from, for the message of a line that differs
    seen = 0
    for raw in src.stream:
        line_no += 1
        if count is not None and seen == count:
            if raw.strip() or src.stream.read(MAX_WORD_BYTES).strip():
                _warn_extra(src.path, count)
            return
        try:
            line = raw.decode("utf-8").rstrip()
        except UnicodeDecodeError:
            seen += 1
            yield Malformed(f"line {line_no}", "not valid UTF-8")
            continue
        if not line:
            continue
        seen += 1
        word, *values = line.split(" ")
        if not word:
            yield Malformed(f"line {line_no}", "starts with a space: no word")
        elif not values:
            yield Malformed(f"line {line_no}", "a word without values")
        elif dim is not None and len(values) != dim:
            yield Malformed(f"line {line_no}", f"{len(values)} values, expected {dim} {expected}")
        else:
            vector, problem = _parse_values(values)
            if vector is None:
                yield Malformed(f"line {line_no}", problem)
            elif not vector.any():
                yield Malformed(f"line {line_no}", ALL_ZERO)
            else:
                if dim is None:
                    dim, expected = len(values), f"as on line {line_no}"
                yield Entry(word, vector)
    if count is not None and seen < count:
        _raise_truncated(src.path, seen, count)


def read_binary(src: Source) -> Iterator[Entry | Malformed]:
    """Entries of a word2vec binary file: a ``COUNT DIM`` line, then COUNT times ``word<space>``
    and DIM little-endian float32 (gensim's reader: a newline before a word is dropped)."""
    count, dim = _read_header(src)
    nbytes = 4 * dim
    buf, pos = b"", 0
    for entry in range(1, count + 1):
        while True:
            space = buf.find(b" ", pos)
            if space != -1 and len(buf) - space - 1 >= nbytes:
                break
            if space == -1 and len(buf) - pos > MAX_WORD_BYTES:
                raise SettingError("format", "{path}: entry {entry} has no word within {most} bytes; this is not "
                                   "word2vec binary: check {format}", path=src.path, entry=entry, most=MAX_WORD_BYTES)
            more = src.stream.read(READ_BLOCK)
            if not more:
                _raise_truncated(src.path, entry - 1, count)
            buf, pos = buf[pos:] + more, 0
        word_bytes = buf[pos:space].lstrip(b"\n")
        vector = np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1).astype(np.float32)
        pos = space + 1 + nbytes
        try:
            word = word_bytes.decode("utf-8")
        except UnicodeDecodeError:
            yield Malformed(f"entry {entry}", "word is not valid UTF-8")
            continue
        if not word:
            yield Malformed(f"entry {entry}", "empty word")
        elif not np.isfinite(vector).all():
            yield Malformed(f"entry {entry}", "NaN or Inf value")
        elif not vector.any():
            yield Malformed(f"entry {entry}", ALL_ZERO)
        else:
            yield Entry(word, vector)
    if buf[pos:].strip() or src.stream.read(MAX_WORD_BYTES).strip():
        _warn_extra(src.path, count)


def read_npy(src: Source, vocab_path: str | os.PathLike) -> Iterator[Entry | Malformed]:
    """Rows of an (N, D) float ``.npy`` (gzipped or not) with the words of an N-line vocabulary
    file (UTF-8, one word per line, the whole line without its line break)."""
    words = read_vocabulary(vocab_path)
    shape, blocks = _npy_blocks(src)
    if shape[0] != len(words):
        raise SparsecodeError(f"{src.path}: has {shape[0]} rows but {vocab_path} has {len(words)} words; "
                              "give the vocabulary saved with this matrix")
    for first, block in blocks:
        finite = np.isfinite(block).all(axis=1)
        for i, vector in enumerate(block):
            row = first + i
            word = words[row]
            if word is None:
                yield Malformed(f"row {row}", f"vocabulary line {row + 1} is not valid UTF-8")
            elif not word:
                yield Malformed(f"row {row}", f"vocabulary line {row + 1} is empty")
            elif not finite[i]:
                yield Malformed(f"row {row}", "NaN or Inf value")
            elif not vector.any():
                yield Malformed(f"row {row}", ALL_ZERO)
            else:
                yield Entry(word, vector)


def read_vocabulary(path: str | os.PathLike) -> list[str | None]:
    """The lines of a vocabulary file (gzipped or not), ``None`` for a line that is not UTF-8.
    Blank lines at the very end are dropped."""
    words: list[str | None] = []
    with Source(path) as src, _reading(src.path):
        for raw in src.stream:
            try:
                words.append(raw.decode("utf-8").rstrip("\r\n"))
            except UnicodeDecodeError:
                words.append(None)
    while words and words[-1] == "":
        words.pop()
    return words


def _npy_blocks(src: Source) -> tuple[tuple[int, int], Iterator[tuple[int, np.ndarray]]]:
    """The array's shape and its rows in float32 blocks of about 16 MiB, read from the stream."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(src.stream)
        read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ValueError(f"npy format version {version[0]}.{version[1]} is not supported")
        shape, fortran_order, dtype = read_header(src.stream)
    except (ValueError, OSError, EOFError) as exc:
        raise SparsecodeError(f"{src.path}: not a readable .npy file ({first_line(exc)}); save the matrix with numpy.save") from None
    if len(shape) != 2 or 0 in shape:
        raise SparsecodeError(f"{src.path}: the array must be 2-D (N words x D dimensions) and non-empty, got shape {shape}")
    if dtype.kind != "f":
        raise SparsecodeError(f"{src.path}: the array must be floating point, got {dtype}; save it as float32")
    if fortran_order:
        raise SparsecodeError(f"{src.path}: the array is in Fortran order; save numpy.ascontiguousarray(matrix) instead")
    n, dim = shape
    row_bytes = dim * dtype.itemsize
    rows_per_block = max(1, (1 << 24) // row_bytes)

    def blocks() -> Iterator[tuple[int, np.ndarray]]:
        for first in range(0, n, rows_per_block):
            m = min(rows_per_block, n - first)
            data = src.stream.read(m * row_bytes)
            if len(data) < m * row_bytes:
                _raise_truncated(src.path, first + len(data) // row_bytes, n, "rows")
            yield first, np.frombuffer(data, dtype=dtype).reshape(m, dim).astype(np.float32)

    return (n, dim), blocks()


def _raise_truncated(path: str, read: int, expected: int, what: str = "vectors") -> None:
    raise SettingError("limit", "{path}: ends after {read} of the {expected} {what} it announces; the file is "
                       "truncated: download it again, or pass {limit} {read} to keep what is there",
                       path=path, read=read, expected=expected, what=what)


def _warn_extra(path: str, count: int) -> None:
    warnings.warn(f"{path}: there is more after the {count} vectors its header announces; the rest was ignored",
                  MalformedEntriesWarning, stacklevel=3)


def read_entries(src: Source, kind: str, vocab: str | os.PathLike | None = None) -> Iterator[Entry | Malformed]:
    """The entries of ``src`` read as ``kind`` (a resolved format); a failure to read the file or
    to gunzip it becomes a :class:`SparsecodeError`."""
    with _reading(src.path):
        if kind == "glove":
            yield from read_text(src, header=False)
        elif kind == "word2vec":
            yield from read_text(src, header=True)
        elif kind == "word2vec-bin":
            yield from read_binary(src)
        else:
            yield from read_npy(src, vocab)


# Conversion ------------------------------------------------------------------------------------


def resolve_format(path: str | os.PathLike, fmt: str, vocab: str | os.PathLike | None) -> str:
    """The reader to use: ``glove``, ``word2vec``, ``word2vec-bin`` or ``npy``. An explicit ``fmt``
    that the content contradicts is an error that names the format it looks like."""
    if fmt not in FORMATS:
        raise SettingError("format", "{format} must be one of {choices} (got {got!r})", choices=", ".join(FORMATS), got=fmt)
    detected = detect_format(path)
    wanted = "word2vec" if fmt == "fasttext" else fmt
    if wanted == "auto":
        if detected is None:
            raise SettingError("format", "{path}: cannot tell its format from the content (not GloVe, word2vec text "
                               "or binary, or .npy); pass {format}", path=path)
        wanted = detected
    elif detected is not None and detected != wanted:
        raise SettingError("format", "{path}: looks like {detected}, not {got}; pass {format} {detected} (or auto)",
                           path=path, detected=detected, got=fmt)
    if wanted == "npy" and vocab is None:
        raise SettingError("vocab", "{path}: a .npy matrix needs its words: pass {vocab} FILE (one word per line)", path=path)
    if wanted != "npy" and vocab is not None:
        raise SettingError("vocab", "{vocab} is only for .npy input; {path} is {wanted}, which holds its own words",
                           path=path, wanted=wanted)
    return wanted


class _Blocks:
    """Vectors gathered into one preallocated (rows, D) float32 block, normalised there when asked,
    and appended to the file each time the block is full."""

    def __init__(self, f: h5py.File, dim: int, rows: int, normalize: bool):
        self.writer = EmbeddingWriter(f, dim)
        self.dim = dim
        self.buffer = np.empty((rows, dim), dtype=np.float32)
        self.words: list[str] = []
        self.normalize = normalize

    @property
    def n(self) -> int:
        """Words added so far."""
        return self.writer.n + len(self.words)

    def add(self, word: str, vector: np.ndarray) -> None:
        self.buffer[len(self.words)] = vector
        self.words.append(word)
        if len(self.words) == len(self.buffer):
            self.flush()

    def flush(self) -> None:
        vectors = self.buffer[: len(self.words)]
        if self.normalize:
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)  # no zero rows: the readers skip them
        self.writer.append(self.words, vectors)
        self.words = []


class _Skipped:
    """The entries a conversion skipped: malformed ones (the first few kept, to show) and repeated
    words (the first one kept, to show), told in one warning each when the conversion ends."""

    def __init__(self):
        self.malformed: list[Malformed] = []
        self.n_malformed = self.n_duplicates = 0
        self.first_duplicate = ""

    def add_malformed(self, item: Malformed) -> None:
        self.n_malformed += 1
        if len(self.malformed) < SHOWN_MALFORMED:
            self.malformed.append(item)

    def add_duplicate(self, word: str) -> None:
        self.n_duplicates += 1
        self.first_duplicate = self.first_duplicate or word

    def mostly_malformed(self, valid: int) -> bool:
        """Whether more than half of the entries read were malformed (``valid``: those kept)."""
        return 2 * self.n_malformed > self.n_malformed + self.n_duplicates + valid

    def malformed_clause(self, valid: int) -> str:
        """``3000 of 3001 entries are malformed, the first line 2 (...)``, for the error of a file
        that is mostly malformed."""
        first = f", the first {self.malformed[0].where} ({self.malformed[0].problem})" if self.malformed else ""
        total = self.n_malformed + self.n_duplicates + valid
        return f"{self.n_malformed:,} of {total:,} entries are malformed{first}"

    def warn(self, path: str, lowercase: bool) -> None:
        n = self.n_malformed
        if n:
            shown = ", ".join(f"{m.where} ({m.problem})" for m in self.malformed)
            more = f" and {n - len(self.malformed)} more" if n > len(self.malformed) else ""
            warnings.warn(f"{path}: skipped {n} malformed entr{'y' if n == 1 else 'ies'}: {shown}{more}",
                          MalformedEntriesWarning, stacklevel=3)
        if self.n_duplicates:
            after = " after lowercasing" if lowercase else ""
            warnings.warn(f"{path}: {self.n_duplicates} duplicate word(s){after} (first: {self.first_duplicate!r}); "
                          "kept the first occurrence of each", DuplicateWordsWarning, stacklevel=3)


def _write_entries(entries: Iterator, f: h5py.File, skipped: "_Skipped", lowercase: bool, normalize: bool,
                   limit: int | None, chunk_rows: int, ticks: Callable[[int], None] | None) -> "_Blocks | None":
    """Append the valid entries (their words lowercased, if asked; the first of each word; at most
    ``limit``) to the open file ``f``, counting the rest in ``skipped``; None when none was valid.
    ``ticks(words_written)`` is called every 4,096 entries read."""
    seen: set[str] = set()
    blocks: _Blocks | None = None
    for i, item in enumerate(entries):
        if ticks is not None and i % 4096 == 0:
            ticks(blocks.n if blocks else 0)
        if isinstance(item, Malformed):
            skipped.add_malformed(item)
            continue
        word = item.word.lower() if lowercase else item.word
        if word in seen:
            skipped.add_duplicate(word)
            continue
        seen.add(word)
        if blocks is None:
            blocks = _Blocks(f, item.vector.shape[0], min(chunk_rows, limit or chunk_rows), normalize)
        blocks.add(word, item.vector)
        if len(seen) == limit:
            break
    return blocks


def convert_embeddings(
    source: str | os.PathLike,
    out: str | os.PathLike,
    format: str = "auto",
    vocab: str | os.PathLike | None = None,
    limit: int | None = None,
    lowercase: bool = False,
    normalize: bool = False,
    force: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int, int, int], None] | None = None,
) -> dict:
    """Convert ``source`` into the ``words``/``vectors`` HDF5 file ``out``, streaming.

    ``limit`` keeps the first ``limit`` words written (after skipping malformed entries and
    repeats); ``lowercase`` lowercases every word (a word that becomes a repeat is dropped);
    ``normalize`` scales every vector to unit L2 norm. Entries with NaN/Inf or an all-zero vector
    are skipped and counted with the malformed ones (sparsecode's reader refuses such rows).
    ``progress(bytes_read, file_size, words_written)`` is called as the file is read.
    Returns a summary: words, dim, format, malformed, duplicates.
    """
    if limit is not None and limit < 1:
        raise SettingError("limit", "{limit} must be at least 1 (got {got})", got=limit)
    check_output(out, force)
    kind = resolve_format(source, format, vocab)
    skipped = _Skipped()
    with Source(source) as src, atomic_output(out, force=force) as tmp, h5py.File(tmp, "w") as f:
        ticks = None if progress is None else lambda n: progress(src.position(), src.size, n)
        blocks = _write_entries(read_entries(src, kind, vocab), f, skipped, lowercase, normalize, limit, chunk_rows, ticks)
        valid = 0 if blocks is None else blocks.n
        if blocks is None or skipped.mostly_malformed(valid):  # the file is not what it was read as
            raise SettingError("format", "{path}: {skipped}; check that it is {kind}, or pass another {format}",
                               path=src.path, skipped=skipped.malformed_clause(valid), kind=kind)
        blocks.flush()
        f.attrs["source"] = os.path.abspath(source)
        f.attrs.update(_source_identity(source, vocab))  # what readable_embeddings checks to reuse a cache
        f.attrs["source_format"] = kind
        f.attrs["lowercase"] = lowercase
        f.attrs["normalize"] = normalize
        if progress is not None:
            progress(src.position(), src.size, blocks.n)

    skipped.warn(src.path, lowercase)
    return {
        "out": str(Path(out)),
        "source": src.path,
        "format": kind,
        "gzip": src.gzipped,
        "words": blocks.n,
        "dim": blocks.dim,
        "malformed": skipped.n_malformed,
        "duplicates": skipped.n_duplicates,
    }


# The other commands' inputs ----------------------------------------------------------------------

#: The name of the converted input kept in a run directory (``train`` on a file that is not HDF5).
CACHE_NAME = "embeddings.h5"


def is_hdf5(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts with the HDF5 signature (a truncated HDF5 file included, so that
    the HDF5 reader says what is wrong with it)."""
    with open(path, "rb") as fh:
        return fh.read(len(_HDF5_MAGIC)) == _HDF5_MAGIC or h5py.is_hdf5(os.fspath(path))


def needs_conversion(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a non-empty file that is not HDF5 (what :func:`readable_embeddings` converts)."""
    return os.path.isfile(path) and os.path.getsize(path) > 0 and not is_hdf5(path)


def _source_identity(source: str | os.PathLike, vocab: str | os.PathLike | None) -> dict:
    """What identifies the input a conversion was made from: its path, size and modification time
    (and the vocabulary's path, for .npy)."""
    st = os.stat(source)
    return {"source": os.path.abspath(source), "source_size": st.st_size, "source_mtime_ns": st.st_mtime_ns,
            "source_vocab": os.path.abspath(vocab) if vocab is not None else ""}


def cache_matches(cache: str | os.PathLike, source: str | os.PathLike, vocab: str | os.PathLike | None = None) -> bool:
    """Whether ``cache`` is a conversion of ``source`` as it is now (same path, size, mtime, vocabulary)."""
    if not os.path.isfile(cache) or not os.path.isfile(source):
        return False
    try:
        with h5py.File(cache, "r") as f:
            recorded = {k: f.attrs.get(k) for k in ("source", "source_size", "source_mtime_ns", "source_vocab")}
    except OSError:
        return False
    wanted = _source_identity(source, vocab)
    return all(_plain(recorded[k]) == v for k, v in wanted.items())


def _plain(value):
    return value.decode() if isinstance(value, bytes) else value.item() if isinstance(value, np.generic) else value


@contextmanager
def readable_embeddings(
    path: str | os.PathLike,
    vocab: str | os.PathLike | None = None,
    temp_dir: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    progress: Callable[[int, int, int], None] | None = None,
) -> Iterator[Path]:
    """The embeddings ``path`` as an HDF5 file for the readers of :mod:`sparsecode.embeddings`.

    An HDF5 file (or a path that is not a readable file: the HDF5 reader says why) is yielded as
    it is. Any format :func:`convert_embeddings` reads (told from the content, gzipped or not;
    ``vocab`` for .npy) is converted once, streamed: into ``cache`` when given (kept, and reused
    while the source is unchanged, see :func:`cache_matches`), else into a temporary file in
    ``temp_dir`` (default: the system's) that is removed when the block ends.
    """
    source = os.fspath(path)
    if not needs_conversion(source):
        if vocab is not None:
            raise SettingError("vocab", "{vocab} is only for .npy input; {path} is not one", path=source)
        yield Path(source)
        return
    if detect_format(source) is None:
        raise SparsecodeError(f"{source}: neither HDF5 nor GloVe, word2vec (text or binary), fastText or .npy "
                              "embeddings, gzipped or not; give an embeddings file in one of those formats")
    if cache is not None and cache_matches(cache, source, vocab):
        yield Path(cache)
        return
    if cache is not None:
        convert_embeddings(source, cache, vocab=vocab, force=True, progress=progress)
        yield Path(cache)
        return
    folder = tempfile.mkdtemp(prefix=".sparsecode-", dir=temp_dir)
    try:
        converted = Path(folder) / CACHE_NAME
        convert_embeddings(source, converted, vocab=vocab, progress=progress)
        yield converted
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def load_embeddings(path, vocab: str | os.PathLike | None = None) -> Embeddings:
    """Read and validate a ``words``/``vectors`` HDF5 file into memory, or a file in any format
    :func:`~sparsecode.convert.convert_embeddings` reads (``vocab``: the words of a .npy),
    converted through a temporary HDF5 file. Embeddings already in memory, a gensim
    ``KeyedVectors`` (its words and vectors as they are, no file) or an (N, D) array, are
    validated as a file's rows are (:func:`~sparsecode.embeddings.embeddings_in_memory`).

    Raises :class:`SparsecodeError` with a one-line message for any problem; warns
    (:class:`DuplicateWordsWarning`) and keeps the first occurrence for duplicate words.
    """
    if not isinstance(path, (str, os.PathLike)):
        return embeddings_in_memory(path)
    with readable_embeddings(path, vocab) as readable, EmbeddingFile(readable, keep_words=True) as ef:
        emb = ef.read_all()
    emb.path = os.fspath(path)
    return emb
