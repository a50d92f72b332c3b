"""Embeddings -> sparse codes, in chunks, into a codes file (see :mod:`sparsecode.codes`) or in memory.

Two methods compute the codes: the model's encoder (``"encoder"``, top-k of its pre-activations)
or orthogonal matching pursuit over its decoder (``"omp"``, :mod:`sparsecode.pursuit`), slower but
much closer to the input for the same k; ``nonneg`` keeps pursuit's coefficients > 0.

The embeddings file is read a chunk of rows at a time and encoded in batches on the device, so
memory stays bounded by the chunk size and the output arrays (which grow on disk), however large
the vocabulary. The output is written to a temporary file and renamed when complete.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import h5py
import numpy as np
import torch

from .atomic import atomic_output, check_output, check_space
from .codes import Codes, config_attrs, load_codes
from .config import DEVICES, on_device, resolve_device
from .convert import CACHE_NAME, cache_matches, readable_embeddings
from .data import DeviceFeed
from .embeddings import DEFAULT_CHUNK_ROWS, EmbeddingFile, Embeddings, embeddings_from_array
from .errors import SparsecodeError
from .model import SparseAutoencoder
from .pursuit import METHODS, check_method, make_coder
from .report import UnitReport
from .topk import kept_workspace, row_order
from .rundir import load_run, read_json

#: Words encoded per batch on the device.
DEFAULT_BATCH = 8192
#: Default number of top words stored per unit.
DEFAULT_TOP_WORDS = 10
#: Default encoding method: the model's encoder (the other: "omp", pursuit over the decoder).
DEFAULT_METHOD = METHODS[0]


class CSRBatch(NamedTuple):
    """The non-zero entries of a batch of codes, on the host, in CSR order."""

    counts: torch.Tensor
    """(B,) int64 non-zero entries per row."""
    rows: torch.Tensor
    """(nnz,) int64 row of each entry, relative to the batch."""
    indices: torch.Tensor
    """(nnz,) int64 unit ids, increasing within each row."""
    data: torch.Tensor
    """(nnz,) float32 activations (> 0, except signed pursuit codes: non-zero)."""


@torch.no_grad()
def device_codes(coder, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes of (B, D) vectors (original scale) with ``k`` active units at most: (B, m) activations and
    (B, m) unit ids, increasing within each row, on the device and read back by nothing.

    ``coder`` is a model (its encoder, as trained: no noise, no annealing) or a pursuit coder
    (see :func:`sparsecode.pursuit.make_coder`). (An objective without a k and no ``k`` given reads the
    widest row's number of units back, to size the codes.)
    """
    enc = coder.encode(x, k)
    units, acts = enc.indices, enc.acts
    order = row_order(units)  # CUDA's top-k leaves a row's units in any order; the CPU's sorts them
    if order is not None:
        units, acts = units.gather(1, order), acts.gather(1, order)
    return acts, units


def csr_entries(acts: torch.Tensor, units: torch.Tensor) -> CSRBatch:
    """(B, m) activations and unit ids on the host -> their CSR entries, zero coefficients left out."""
    keep = acts != 0
    rows = torch.arange(acts.shape[0]).unsqueeze(1).expand_as(keep)
    if bool(keep.all()):  # the usual case: no zeros to leave out, no masked copies
        return CSRBatch(keep.sum(1), rows.reshape(-1), units.reshape(-1), acts.reshape(-1))
    return CSRBatch(keep.sum(1), rows[keep], units[keep], acts[keep])


def encode_batch(coder, x: torch.Tensor, k: int) -> CSRBatch:
    """:func:`device_codes` of (B, D) ``x`` as CSR entries on the host (one copy back: one sync on CUDA)."""
    acts, units = device_codes(coder, x, k)
    return csr_entries(*DeviceFeed.wait(DeviceFeed(acts.device).to_host(acts, units)))


def iter_codes(
    model: SparseAutoencoder, chunks: Iterator[tuple[int, np.ndarray]], k: int, batch_size: int = DEFAULT_BATCH,
    method: str = DEFAULT_METHOD, nonneg: bool = False,
) -> Iterator[tuple[int, CSRBatch]]:
    """Encode ``(first_row, vectors)`` chunks; yields ``(first_row, batch)`` per device batch.

    On CUDA the vectors go to the device and the codes come back through pinned memory without
    waiting, and a batch is handed on only once the next one is queued: the host builds the CSR
    entries, the unit report and the file of one batch while the device encodes the next, and waits
    once per batch, for its codes.
    """
    feed = DeviceFeed(model.W_enc.device)
    coder = make_coder(model, method, nonneg)
    pending = None  # (first row, to_host entry) of the batch queued last
    for first, block in chunks:
        for start in range(0, block.shape[0], batch_size):
            x = feed.tensor(block[start : start + batch_size])
            queued = (first + start, feed.to_host(*device_codes(coder, x, k)))
            if pending is not None:
                yield pending[0], csr_entries(*feed.wait(pending[1]))
            pending = queued
    if pending is not None:
        yield pending[0], csr_entries(*feed.wait(pending[1]))


def expected_l0(run_dir: str | os.PathLike, n_hidden: int) -> int:
    """Non-zeros per word to reserve disk space for when codes have no k: twice the trained
    model's mean L0 (from ``summary.json``), or every unit when that is unknown."""
    try:
        mean_l0 = float(read_json(Path(run_dir) / "summary.json")["mean_l0"])
    except (SparsecodeError, KeyError, TypeError, ValueError):
        return n_hidden
    return min(n_hidden, max(1, int(2 * mean_l0) + 1))


def default_codes_path(run_dir: str | os.PathLike) -> Path:
    """Where ``sparsecode encode RUN EMB`` writes the codes without ``--out``: ``RUN/codes.h5``."""
    return Path(run_dir) / "codes.h5"


def check_k(k: int, n_hidden: int, what: str = "--k") -> None:
    if not 1 <= k <= n_hidden:
        raise SparsecodeError(f"{what} {k} is out of range: it must be between 1 and the hidden size {n_hidden}")


class _ArrayWords:
    """Vectors in memory as :class:`~sparsecode.embeddings.EmbeddingFile` offers them to encoding:
    words, size, dimension, chunks. A bare array's words are its row numbers ("0", "1", ...)."""

    def __init__(self, words: list[str], vectors: np.ndarray, path: str):
        self.words, self.vectors, self.path = words, vectors, path
        self.dim = int(vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def iter_chunks(self, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, len(self.words), chunk_rows):
            yield start, np.ascontiguousarray(self.vectors[start : start + chunk_rows], dtype=np.float32)

    def __enter__(self) -> "_ArrayWords":
        return self

    def __exit__(self, *exc) -> None:
        pass


def open_words(embeddings) -> "EmbeddingFile | _ArrayWords":
    """What to encode: an embeddings file (read a chunk at a time), :class:`Embeddings` or a
    (N, D) array in memory (checked as a file's rows are)."""
    if isinstance(embeddings, Embeddings):
        return _ArrayWords(list(embeddings.words), embeddings.vectors, embeddings.path)
    if isinstance(embeddings, (np.ndarray, torch.Tensor)):
        emb = embeddings_from_array(embeddings)
        return _ArrayWords(emb.words, emb.vectors, emb.path)
    return EmbeddingFile(embeddings, keep_words=True)


def resolve_model(model_or_run_dir, device: torch.device) -> tuple[SparseAutoencoder, dict, str | None]:
    """The model, the settings the codes file records and its run directory (None without one),
    from a :class:`SparseAutoencoder`, a run directory or a ``model.pt`` file."""
    if isinstance(model_or_run_dir, SparseAutoencoder):
        model = model_or_run_dir.to(device).eval()
        return model, model_settings(model), None
    path = Path(model_or_run_dir)
    if path.is_file():
        model = SparseAutoencoder.load(path, device=device).eval()
        return model, model_settings(model), None
    model, config = load_run(path, device=device)
    return model, config, os.path.abspath(path)


def model_settings(model: SparseAutoencoder) -> dict:
    """What a model knows of its run, for the codes file of a model without its run directory."""
    return {"sparsity": model.sparsity, "hidden": model.n_hidden, "d_in": model.d_in,
            "encoder_layers": list(model.encoder_layers), "k_encode": model.encode_k}


class _FileCodes:
    """The CSR arrays of a codes file, grown on disk batch by batch."""

    def __init__(self, f: h5py.File, n: int, n_units: int):
        grp = f.create_group("codes")
        grp.attrs["shape"] = np.array([n, n_units], dtype=np.int64)
        self.indptr = grp.create_dataset("indptr", shape=(n + 1,), dtype=np.int64)
        self.indptr[0] = 0
        self.indices = grp.create_dataset("indices", shape=(0,), maxshape=(None,), dtype=np.int32, chunks=(1 << 16,))
        self.data = grp.create_dataset("data", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(1 << 16,))
        self.nnz = 0

    def add(self, first: int, counts: np.ndarray, indices: np.ndarray, data: np.ndarray) -> None:
        m = len(indices)
        self.indices.resize((self.nnz + m,))
        self.data.resize((self.nnz + m,))
        self.indices[self.nnz :] = indices.astype(np.int32)
        self.data[self.nnz :] = data
        self.indptr[first + 1 : first + 1 + len(counts)] = self.nnz + np.cumsum(counts)
        self.nnz += m


class _MemoryCodes:
    """The CSR arrays in memory."""

    def __init__(self, n: int):
        self.indptr = np.zeros(n + 1, dtype=np.int64)
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []
        self.nnz = 0

    def add(self, first: int, counts: np.ndarray, indices: np.ndarray, data: np.ndarray) -> None:
        self.parts.append((indices.astype(np.int32), data.astype(np.float32, copy=False)))
        self.indptr[first + 1 : first + 1 + len(counts)] = self.nnz + np.cumsum(counts)
        self.nnz += len(indices)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        empty = (np.zeros(0, np.int32), np.zeros(0, np.float32))
        indices, data = (np.concatenate(col) for col in zip(*(self.parts or [empty])))
        return self.indptr, indices, data


class _Settings(NamedTuple):
    model: SparseAutoencoder
    config: dict
    run_dir: str | None
    where: str
    """How messages name the model: "the model in RUN_DIR" as given, or "the model"."""
    k: int | None
    method: str
    nonneg: bool
    top_words: int
    batch_size: int
    chunk_rows: int
    device: torch.device


def _prepare(model_or_run_dir, k, method, nonneg, top_words, batch_size, chunk_rows, device) -> _Settings:
    """Every check of the settings, before any file is opened or written."""
    check_method(method, nonneg)
    if top_words < 0:
        raise SparsecodeError(f"--top-words must be 0 or more (got {top_words})")
    if batch_size < 1:
        raise SparsecodeError(f"--batch-size must be at least 1 (got {batch_size})")
    dev = resolve_device(device)
    model, config, run_dir = resolve_model(model_or_run_dir, dev)
    where = "the model" if run_dir is None else f"the model in {model_or_run_dir}"
    k = model.resolve_k(k)
    if k is not None:
        check_k(k, model.n_hidden)
    if method == "omp" and k is None:
        raise SparsecodeError(f"{model_or_run_dir}: --method omp needs --k for a model trained with --sparsity {model.sparsity}")
    if method == "omp" and not model.is_linear:
        raise SparsecodeError(f"{model_or_run_dir}: --method omp needs the single-layer model (its decoder is not a dictionary "
                              "with --encoder-layers); encode with --method encoder")
    if method == "omp" and k > model.d_in:
        raise SparsecodeError(
            f"--k {k} is larger than the {model.d_in} input dimensions; pursuit can use at most {model.d_in} atoms"
        )
    return _Settings(model, config, run_dir, where, k, method, nonneg, top_words, batch_size, chunk_rows, dev)


@contextlib.contextmanager
def _open_input(embeddings, st: _Settings, vocab, temp_dir) -> Iterator:
    """:func:`open_words`, with a file in any format ``convert`` reads (``vocab``: the words of a
    .npy) converted (streamed) into a temporary file in ``temp_dir``, removed at the end; when the
    run was trained on that same file, its converted copy in the run directory is read instead."""
    if not isinstance(embeddings, (str, os.PathLike)):
        with open_words(embeddings) as emb:
            yield emb
        return
    run_cache = Path(st.run_dir) / CACHE_NAME if st.run_dir is not None else None
    cache = run_cache if run_cache is not None and cache_matches(run_cache, embeddings, vocab) else None
    with readable_embeddings(embeddings, vocab, temp_dir=temp_dir, cache=cache) as path, \
            EmbeddingFile(path, keep_words=True) as emb:
        emb.path = os.fspath(embeddings)  # messages name the file the user gave
        yield emb


def _check_dim(emb, st: _Settings) -> None:
    if emb.dim != st.model.d_in:
        raise SparsecodeError(
            f"{emb.path}: vectors have {emb.dim} dimensions but {st.where} expects {st.model.d_in}; "
            "encode the embeddings the model was trained on"
        )


def _encode_rows(emb, st: _Settings, sink, progress) -> tuple[UnitReport, int]:
    """Encode every row of ``emb`` into ``sink``; the unit report and the number of all-zero rows."""
    n = len(emb)
    report = UnitReport(st.model.n_hidden, st.top_words)  # on the host, where the codes arrive
    zero_rows = 0
    for first, batch in iter_codes(st.model, emb.iter_chunks(st.chunk_rows), st.k, st.batch_size, st.method, st.nonneg):
        report.update(batch.rows + first, batch.indices, batch.data)
        counts = batch.counts.cpu().numpy()
        sink.add(first, counts, batch.indices.cpu().numpy(), batch.data.cpu().numpy())
        zero_rows += int((counts == 0).sum())
        if progress is not None:
            progress(first + len(counts), n)
    return report, zero_rows


def _top_words(report: UnitReport, words: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The finished report: (H, M) top words ("" pads), their values, (H,) frequencies."""
    unit = report.result()
    word_arr = np.array(words, dtype=object)
    top = np.where(unit.top_rows >= 0, word_arr[np.maximum(unit.top_rows, 0)], "") if len(word_arr) else \
        np.full(unit.top_rows.shape, "", dtype=object)
    return top, unit.top_values, unit.frequency


def _codes_attrs(st: _Settings) -> dict:
    """The root attributes of a codes file: the run's settings and how it was encoded."""
    attrs = config_attrs(st.config)
    if st.k is not None:  # absent: the objective's own code (threshold or activation)
        attrs["encode_k"] = st.k
    attrs["encode_method"] = st.method
    attrs["encode_nonneg"] = st.nonneg
    if st.run_dir is not None:
        attrs["run_dir"] = st.run_dir
    attrs["model_fingerprint"] = st.model.fingerprint()  # what evaluate and report check, not the path
    return attrs


def _summary(out, n: int, st: _Settings, nnz: int, zero_rows: int, frequency: np.ndarray) -> dict:
    return {
        "out": str(Path(out)) if out is not None else None,
        "words": n,
        "units": st.model.n_hidden,
        "k": st.k,
        "method": f"{st.method} (non-negative)" if st.nonneg else st.method,
        "nnz": nnz,
        "mean_l0": nnz / n,
        "zero_rows": zero_rows,
        "dead_units": int((frequency == 0).sum()),
    }


def encode_file(
    model_or_run_dir,
    embeddings,
    out: str | os.PathLike,
    k: int | None = None,
    top_words: int = DEFAULT_TOP_WORDS,
    force: bool = False,
    device: str = DEVICES[0],
    batch_size: int = DEFAULT_BATCH,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int, int], None] | None = None,
    method: str = DEFAULT_METHOD,
    nonneg: bool = False,
    vocab: str | os.PathLike | None = None,
) -> dict:
    """Encode every word of ``embeddings`` into the codes file ``out``, streaming (what
    ``sparsecode encode`` does); see :func:`encode` for the arguments. Memory holds a chunk of
    vectors and the unit report, however large the vocabulary.

    Returns a summary: out, words, units, k, method, nnz, mean L0, all-zero rows, dead units.
    """
    st = _prepare(model_or_run_dir, k, method, nonneg, top_words, batch_size, chunk_rows, device)
    check_output(out, force)
    H = st.model.n_hidden
    # keep_words: the codes file stores them all; the encoder's kept buffer is freed at the end.
    with on_device(st.device), kept_workspace(), _open_input(embeddings, st, vocab, Path(out).parent) as emb:
        _check_dim(emb, st)
        n = len(emb)
        # Upper bound: k entries (int32 + float32) per word, pointers, words, the unit report.
        per_word = st.k or (expected_l0(st.run_dir, H) if st.run_dir else H)
        check_space(out, n * per_word * 8 + (n + 1) * 8 + sum(len(w) + 16 for w in emb.words) + H * top_words * 40 + 2**20)
        with atomic_output(out, force=force) as tmp, h5py.File(tmp, "w") as f:
            sink = _FileCodes(f, n, H)
            report, zero_rows = _encode_rows(emb, st, sink, progress)
            top, top_values, frequency = _top_words(report, emb.words)
            dims = f.create_group("dimensions")
            str_dt = h5py.string_dtype("utf-8")
            dims.create_dataset("top_words", data=top.astype(object), dtype=str_dt)
            dims.create_dataset("top_values", data=top_values)
            dims.create_dataset("frequency", data=frequency)
            f.create_dataset("words", data=np.array(emb.words, dtype=object), dtype=str_dt)
            for key, value in _codes_attrs(st).items():
                f.attrs[key] = value
    return _summary(out, n, st, sink.nnz, zero_rows, frequency)


def encode(
    model_or_run_dir,
    embeddings,
    out: str | os.PathLike | None = None,
    k: int | None = None,
    top_words: int = DEFAULT_TOP_WORDS,
    force: bool = False,
    device: str = DEVICES[0],
    batch_size: int = DEFAULT_BATCH,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int, int], None] | None = None,
    method: str = DEFAULT_METHOD,
    nonneg: bool = False,
    vocab: str | os.PathLike | None = None,
) -> Codes:
    """The codes of every word of ``embeddings``, as :class:`~sparsecode.codes.Codes` in memory;
    written to the codes file ``out`` as well when it is given (then read back from it).

    ``model_or_run_dir`` is a :class:`SparseAutoencoder`, a run directory or its ``model.pt``
    alone: each codes the same way, since the model records its objective and encode k.
    ``embeddings`` is an embeddings file, :class:`~sparsecode.embeddings.Embeddings` or a (N, D)
    array (its words are then the row numbers "0", "1", ...). ``method`` is ``"encoder"`` or
    ``"omp"`` (orthogonal matching pursuit over the decoder; ``nonneg`` keeps its coefficients
    > 0). ``k`` defaults to the model's encode k (for objectives without a k, none: every non-zero
    of the code; a given ``k`` caps the code at its k largest). ``progress(done, total)`` is called
    after each batch. A file in another format than HDF5 (any that ``convert`` reads; ``vocab``:
    the words of a .npy) is converted on the way, streamed, into a temporary file.
    """
    if out is not None:
        encode_file(model_or_run_dir, embeddings, out, k, top_words, force, device, batch_size, chunk_rows, progress,
                    method, nonneg, vocab)
        return load_codes(out)
    st = _prepare(model_or_run_dir, k, method, nonneg, top_words, batch_size, chunk_rows, device)
    with on_device(st.device), kept_workspace(), _open_input(embeddings, st, vocab, None) as emb:
        _check_dim(emb, st)
        sink = _MemoryCodes(len(emb))
        report, _ = _encode_rows(emb, st, sink, progress)
        top, top_values, frequency = _top_words(report, emb.words)
        words = list(emb.words)
    indptr, indices, data = sink.arrays()
    return Codes(words, indptr, indices, data, st.model.n_hidden, [[w for w in row if w] for row in top],
                 np.asarray(top_values, dtype=np.float32), np.asarray(frequency, dtype=np.int64),
                 _codes_attrs(st), "")
