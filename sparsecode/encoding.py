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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numpy as np
import torch

from .atomic import check_output, check_space
from .codes import Codes, CodesBuffer, CodesWriter, config_attrs, load_codes
from .config import DEVICES, check_units, resolve_device
from .convert import CACHE_NAME, cache_matches, readable_embeddings
from .devices import Device, for_torch
from .embeddings import DEFAULT_CHUNK_ROWS, EmbeddingFile, embeddings_in_memory
from .errors import SparsecodeError, need
from .interpret import FREQUENT_WORDS
from .model import SparseAutoencoder
from .pursuit import METHODS, check_method, check_pursuit, make_coder
from .report import UnitReport, UnitSummary
from .rundir import load_run, read_json


@dataclass(frozen=True)
class EncodeSettings:
    """How words are encoded, one default per setting: :func:`encode`, :func:`encode_file` and
    ``sparsecode encode`` take these."""

    k: int | None = None
    """Active units per word; default: the model's encode k (for objectives without a k, none:
    every non-zero of the code). A given k caps the code at its k largest."""
    method: str = METHODS[0]
    """``encoder`` (the model's encoder) or ``omp`` (orthogonal matching pursuit over the decoder)."""
    nonneg: bool = False
    """With ``omp``: keep every coefficient > 0, like the encoder's."""
    top_words: int = 10
    """Top words stored per unit."""
    top_among: int = FREQUENT_WORDS
    """A unit's top words are its largest activations among the first this many words (embedding
    files list the most frequent first, so a unit reads as the words people use, not as rare tokens
    of a long tail; the measures of :mod:`sparsecode.interpret` rank the same words); 0: all."""
    batch_size: int = 8192
    """Words encoded per batch on the device (on a CPU at most 4,194,304 / H: see :func:`device_batch`)."""
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    """Rows of the embeddings file read at a time."""
    device: str = DEVICES[0]
    """Where to encode (see ``TrainConfig.device``)."""

    def check(self) -> None:
        """The checks that need no model: the method, the counts."""
        check_method(self.method, self.nonneg)
        need(self.top_words >= 0, "top_words", "{top_words} must be 0 or more (got {got})", got=self.top_words)
        need(self.top_among >= 0, "top_among", "{top_among} must be 0 or more (got {got})", got=self.top_among)
        need(self.batch_size >= 1, "batch_size", "{batch_size} must be at least 1 (got {got})", got=self.batch_size)


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
    units, order = units.sort(dim=1)  # a top-k leaves a row's units in any order
    return acts.gather(1, order), units


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
    return csr_entries(*Device.wait(for_torch(acts.device).to_host(acts, units)))


#: On a CPU a batch's (words, H) pre-activations hold at most this many values (16 MiB of float32):
#: they then stay below glibc's mmap threshold, reused from its heap instead of page-faulted in
#: anew, and mostly in cache for the top-k that reads them. Encoding 50,000 x 300 words into 4,096
#: units (one thread) took 2.06x its dense product in batches of 8,192 words, 1.35x in 1,024.
CPU_BATCH_VALUES = 1 << 22


def device_batch(batch_size: int, n_hidden: int, device: torch.device) -> int:
    """Words encoded at a time: ``batch_size``, on a CPU capped at :data:`CPU_BATCH_VALUES` / H."""
    if device.type != "cpu":
        return batch_size
    return max(1, min(batch_size, CPU_BATCH_VALUES // n_hidden))


def iter_codes(
    model: SparseAutoencoder, chunks: Iterator[tuple[int, np.ndarray]], k: int,
    batch_size: int = EncodeSettings.batch_size, method: str = EncodeSettings.method, nonneg: bool = False,
) -> Iterator[tuple[int, CSRBatch]]:
    """Encode ``(first_row, vectors)`` chunks; yields ``(first_row, batch)`` per device batch.

    On CUDA the vectors go to the device and the codes come back through pinned memory without
    waiting, and a batch is handed on only once the next one is queued: the host builds the CSR
    entries, the unit report and the file of one batch while the device encodes the next, and waits
    once per batch, for its codes.
    """
    feed = for_torch(model.W_enc.device)
    coder = make_coder(model, method, nonneg)
    batch_size = device_batch(batch_size, model.n_hidden, model.W_enc.device)
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
    """Where ``sparsecode encode RUN EMB`` writes the codes without ``--out``: ``RUN/codes.h5``
    (given a ``model.pt`` alone, ``codes.h5`` beside it)."""
    run_dir = Path(run_dir)
    return (run_dir.parent if run_dir.is_file() else run_dir) / "codes.h5"


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
    """What to encode: an embeddings file (read a chunk at a time), or in memory
    :class:`Embeddings`, a gensim ``KeyedVectors`` or a (N, D) array-like (checked as a file's rows
    are, see :func:`~sparsecode.embeddings.embeddings_in_memory`)."""
    if isinstance(embeddings, (str, os.PathLike)):
        return EmbeddingFile(embeddings, keep_words=True)
    emb = embeddings_in_memory(embeddings)
    return _ArrayWords(list(emb.words), emb.vectors, emb.path)


def resolve_model(model_or_run_dir, device: torch.device) -> tuple[SparseAutoencoder, dict, str | None]:
    """The model, the settings the codes file records and its run directory (None without one),
    from a :class:`SparseAutoencoder`, a run directory, a ``model.pt`` file, or a folder that holds
    a ``model.pt`` alone (no ``config.json``: the model records all that encoding needs)."""
    if isinstance(model_or_run_dir, SparseAutoencoder):
        model = model_or_run_dir.to(device).eval()
        return model, model_settings(model), None
    path = Path(model_or_run_dir)
    if path.is_dir() and (path / "model.pt").is_file() and not (path / "config.json").exists():
        path = path / "model.pt"
    if path.is_file():
        model = SparseAutoencoder.load(path, device=device).eval()
        return model, model_settings(model), None
    model, config = load_run(path, device=device)
    return model, config, os.path.abspath(path)


def model_settings(model: SparseAutoencoder) -> dict:
    """What a model knows of its run, for the codes file of a model without its run directory."""
    return {"sparsity": model.sparsity, "hidden": model.n_hidden, "d_in": model.d_in,
            "encoder_layers": list(model.encoder_layers), "k_encode": model.encode_k}


class _Plan(NamedTuple):
    """What an encoding uses: the settings, checked, and what they resolve to."""

    settings: EncodeSettings
    model: SparseAutoencoder
    config: dict
    run_dir: str | None
    where: str
    """How messages name the model: "the model in RUN_DIR" as given, or "the model"."""
    k: int | None
    """The k in use: the settings' or the model's encode k (None: the objective's own code)."""
    device: torch.device


def _prepare(model_or_run_dir, settings: EncodeSettings) -> _Plan:
    """Every check of the settings, before any file is opened or written."""
    settings.check()
    dev = resolve_device(settings.device)
    model, config, run_dir = resolve_model(model_or_run_dir, dev)
    where = "the model" if run_dir is None else f"the model in {model_or_run_dir}"
    k = model.resolve_k(settings.k)
    if k is not None:
        check_units("k", k, model.n_hidden)
    if settings.method == "omp":  # a model in memory has no file to name
        check_pursuit(model, k, f"{model_or_run_dir}: " if isinstance(model_or_run_dir, (str, os.PathLike)) else "")
    return _Plan(settings, model, config, run_dir, where, k, dev)


@contextlib.contextmanager
def _open_input(embeddings, plan: _Plan, vocab, temp_dir) -> Iterator:
    """:func:`open_words`, with a file in any format ``convert`` reads (``vocab``: the words of a
    .npy) converted (streamed) into a temporary file in ``temp_dir``, removed at the end; when the
    run was trained on that same file, its converted copy in the run directory is read instead.
    The words are read, dimension checked, on the plan's device."""
    with for_torch(plan.device).scope(), _open_words_of(embeddings, plan, vocab, temp_dir) as emb:
        if emb.dim != plan.model.d_in:
            raise SparsecodeError(
                f"{emb.path}: vectors have {emb.dim} dimensions but {plan.where} expects {plan.model.d_in}; "
                "encode the embeddings the model was trained on"
            )
        yield emb


@contextlib.contextmanager
def _open_words_of(embeddings, plan: _Plan, vocab, temp_dir) -> Iterator:
    """The reading part of :func:`_open_input`."""
    if not isinstance(embeddings, (str, os.PathLike)):
        with open_words(embeddings) as emb:
            yield emb
        return
    run_cache = Path(plan.run_dir) / CACHE_NAME if plan.run_dir is not None else None
    cache = run_cache if run_cache is not None and cache_matches(run_cache, embeddings, vocab) else None
    with readable_embeddings(embeddings, vocab, temp_dir=temp_dir, cache=cache) as path, \
            EmbeddingFile(path, keep_words=True) as emb:
        emb.path = os.fspath(embeddings)  # messages name the file the user gave
        yield emb


def _encode_rows(emb, plan: _Plan, sink, progress) -> tuple[UnitSummary, int]:
    """Encode every row of ``emb`` into ``sink``; the unit report and the number of all-zero rows."""
    n, st = len(emb), plan.settings
    report = UnitReport(plan.model.n_hidden, st.top_words, rows_below=st.top_among or None)  # on the host
    zero_rows = 0
    for first, batch in iter_codes(plan.model, emb.iter_chunks(st.chunk_rows), plan.k, st.batch_size, st.method, st.nonneg):
        report.update(batch.rows + first, batch.indices, batch.data)
        counts = batch.counts.cpu().numpy()
        sink.add_rows(first, counts, batch.indices.cpu().numpy(), batch.data.cpu().numpy())
        zero_rows += int((counts == 0).sum())
        if progress is not None:
            progress(first + len(counts), n)
    return report.result(), zero_rows


def _codes_attrs(plan: _Plan) -> dict:
    """The root attributes of a codes file: the run's settings and how it was encoded."""
    attrs = config_attrs(plan.config)
    if plan.k is not None:  # absent: the objective's own code (threshold or activation)
        attrs["encode_k"] = plan.k
    attrs["encode_method"] = plan.settings.method
    attrs["encode_nonneg"] = plan.settings.nonneg
    attrs["top_among"] = plan.settings.top_among  # the top words' ranking: among the first N words (0: all)
    if plan.run_dir is not None:
        attrs["run_dir"] = plan.run_dir
    attrs["model_fingerprint"] = plan.model.fingerprint()  # what evaluate and report check, not the path
    return attrs


def _summary(out, n: int, plan: _Plan, nnz: int, zero_rows: int, frequency: np.ndarray) -> dict:
    method, nonneg = plan.settings.method, plan.settings.nonneg
    return {
        "out": str(Path(out)) if out is not None else None,
        "words": n,
        "units": plan.model.n_hidden,
        "k": plan.k,
        "method": f"{method} (non-negative)" if nonneg else method,
        "nnz": nnz,
        "mean_l0": nnz / n,
        "zero_rows": zero_rows,
        "dead_units": int((frequency == 0).sum()),
    }


def _space_needed(plan: _Plan, emb) -> int:
    """Bytes a codes file of ``emb`` may take, at most: k entries (int32 + float32) per word (or
    the run's expected L0), the row pointers, the words, the unit report."""
    n, H = len(emb), plan.model.n_hidden
    per_word = plan.k or (expected_l0(plan.run_dir, H) if plan.run_dir else H)
    return n * per_word * 8 + (n + 1) * 8 + sum(len(w) + 16 for w in emb.words) + H * plan.settings.top_words * 40 + 2**20


def encode_file(model_or_run_dir, embeddings, out: str | os.PathLike, *, force: bool = False,
                progress: Callable[[int, int], None] | None = None, vocab: str | os.PathLike | None = None,
                **settings) -> dict:
    """Encode every word of ``embeddings`` into the codes file ``out``, streaming (what
    ``sparsecode encode`` does); see :func:`encode` for the arguments. Memory holds a chunk of
    vectors and the unit report, however large the vocabulary.

    Returns a summary: out, words, units, k, method, nnz, mean L0, all-zero rows, dead units.
    """
    plan = _prepare(model_or_run_dir, EncodeSettings(**settings))
    check_output(out, force)
    # keep_words: the codes file stores them all.
    with _open_input(embeddings, plan, vocab, Path(out).parent) as emb:
        check_space(out, _space_needed(plan, emb))
        with CodesWriter.create(out, len(emb), plan.model.n_hidden, force=force) as writer:
            units, zero_rows = _encode_rows(emb, plan, writer, progress)
            writer.finish(emb.words, units, _codes_attrs(plan))
    return _summary(out, writer.n_words, plan, writer.nnz, zero_rows, units.frequency)


def encode(model_or_run_dir, embeddings, out: str | os.PathLike | None = None, *, force: bool = False,
           progress: Callable[[int, int], None] | None = None, vocab: str | os.PathLike | None = None,
           **settings) -> Codes:
    """The codes of every word of ``embeddings``, as :class:`~sparsecode.codes.Codes` in memory;
    written to the codes file ``out`` as well when it is given (then read back from it).

    ``model_or_run_dir`` is a :class:`SparseAutoencoder`, a run directory or its ``model.pt``
    alone: each codes the same way, since the model records its objective and encode k.
    ``embeddings`` is an embeddings file, :class:`~sparsecode.embeddings.Embeddings` or a (N, D)
    array (its words are then the row numbers "0", "1", ...). ``settings`` are those of
    :class:`EncodeSettings`: ``k``, ``method`` (``"encoder"`` or ``"omp"``, orthogonal matching
    pursuit over the decoder, whose coefficients ``nonneg`` keeps > 0), ``top_words``,
    ``batch_size``, ``chunk_rows`` and ``device``. ``force`` overwrites ``out``.
    ``progress(done, total)`` is called after each batch. A file in another format than HDF5 (any
    that ``convert`` reads; ``vocab``: the words of a .npy) is converted on the way, streamed,
    into a temporary file.
    """
    if out is not None:
        encode_file(model_or_run_dir, embeddings, out, force=force, progress=progress, vocab=vocab, **settings)
        return load_codes(out)
    plan = _prepare(model_or_run_dir, EncodeSettings(**settings))
    with _open_input(embeddings, plan, vocab, None) as emb:
        buffer = CodesBuffer(len(emb), plan.model.n_hidden)
        units, _ = _encode_rows(emb, plan, buffer, progress)
        return buffer.finish(emb.words, units, _codes_attrs(plan))
