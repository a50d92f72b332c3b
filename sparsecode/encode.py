"""Embeddings -> sparse codes, in chunks, into a codes file (see :mod:`sparsecode.codes`).

Two methods compute the codes: the model's encoder (``"encoder"``, top-k of its pre-activations)
or orthogonal matching pursuit over its decoder (``"omp"``, :mod:`sparsecode.pursuit`), slower but
much closer to the input for the same k; ``nonneg`` keeps pursuit's coefficients > 0.

The embeddings file is read a chunk of rows at a time and encoded in batches on the device, so
memory stays bounded by the chunk size and the output arrays (which grow on disk), however large
the vocabulary. The output is written to a temporary file and renamed when complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import h5py
import numpy as np
import torch

from .atomic import atomic_output, check_output, check_space
from .codes import config_attrs
from .config import on_device, resolve_device
from .convert import CACHE_NAME, cache_matches, readable_embeddings
from .data import DeviceFeed
from .embeddings import DEFAULT_CHUNK_ROWS, EmbeddingFile
from .errors import SparsecodeError
from .model import SparseAutoencoder
from .pursuit import check_method, make_coder
from .report import UnitReport
from .topk import kept_workspace, row_order
from .train import load_run, read_json

#: Words encoded per batch on the device.
DEFAULT_BATCH = 8192
#: Default number of top words stored per unit.
DEFAULT_TOP_WORDS = 10


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
    method: str = "encoder", nonneg: bool = False,
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


def default_encode_k(config: dict) -> int | None:
    """The k a run encodes with by default: its ``k_encode`` (None for objectives without a k:
    their codes are the threshold's or the activation's non-zeros)."""
    if "k_encode" in config:
        return config["k_encode"]
    return int(config.get("k", 32))


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


def encode(
    run_dir: str | os.PathLike,
    embeddings_path: str | os.PathLike,
    out: str | os.PathLike,
    k: int | None = None,
    top_words: int = DEFAULT_TOP_WORDS,
    force: bool = False,
    device: str = "auto",
    batch_size: int = DEFAULT_BATCH,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int, int], None] | None = None,
    method: str = "encoder",
    nonneg: bool = False,
    vocab: str | os.PathLike | None = None,
) -> dict:
    """Encode every word of ``embeddings_path`` with the model in ``run_dir`` into codes file ``out``.

    ``embeddings_path`` is HDF5 or any format ``convert`` reads (``vocab``: the words of a .npy),
    converted (streamed) into a temporary file beside ``out``, removed at the end; when the run
    was trained on that same file, its converted copy in the run directory is read instead.

    ``method`` is ``"encoder"`` or ``"omp"`` (orthogonal matching pursuit over the decoder;
    ``nonneg`` keeps its coefficients > 0). ``k`` defaults to the run's encode k (for objectives
    without a k, none: every non-zero of the code; a given ``k`` caps the code at its k largest).
    ``progress(done, total)`` is called after each batch.
    Returns a summary: words, units, k, method, nnz, mean L0, all-zero rows, dead units.
    """
    check_method(method, nonneg)
    if top_words < 0:
        raise SparsecodeError(f"--top-words must be 0 or more (got {top_words})")
    if batch_size < 1:
        raise SparsecodeError(f"--batch-size must be at least 1 (got {batch_size})")
    check_output(out, force)
    dev = resolve_device(device)
    model, config = load_run(run_dir, device=dev)
    k = k if k is not None else default_encode_k(config)
    if k is not None:
        check_k(k, model.n_hidden)
    if method == "omp" and k is None:
        raise SparsecodeError(f"{run_dir}: --method omp needs --k for a model trained with --sparsity {model.sparsity}")
    if method == "omp" and not model.is_linear:
        raise SparsecodeError(f"{run_dir}: --method omp needs the single-layer model (its decoder is not a dictionary "
                              "with --encoder-layers); encode with --method encoder")
    if method == "omp" and k > model.d_in:
        raise SparsecodeError(
            f"--k {k} is larger than the {model.d_in} input dimensions; pursuit can use at most {model.d_in} atoms"
        )
    H = model.n_hidden

    run_cache = Path(run_dir) / CACHE_NAME
    readable = readable_embeddings(embeddings_path, vocab, temp_dir=Path(out).parent,
                                   cache=run_cache if cache_matches(run_cache, embeddings_path, vocab) else None)
    # keep_words: the codes file stores them all; the encoder's kept buffer is freed at the end.
    with on_device(dev), kept_workspace(), readable as emb_file, EmbeddingFile(emb_file, keep_words=True) as emb:
        if emb.dim != model.d_in:
            raise SparsecodeError(
                f"{embeddings_path}: vectors have {emb.dim} dimensions but the model in {run_dir} expects {model.d_in}; "
                "encode the embeddings the model was trained on"
            )
        n = len(emb)
        # Upper bound: k entries (int32 + float32) per word, pointers, words, the unit report.
        check_space(out, n * (k or expected_l0(run_dir, H)) * 8 + (n + 1) * 8 + sum(len(w) + 16 for w in emb.words) + H * top_words * 40 + 2**20)
        report = UnitReport(H, top_words)  # on the host, where the codes arrive
        with atomic_output(out, force=force) as tmp, h5py.File(tmp, "w") as f:
            grp = f.create_group("codes")
            grp.attrs["shape"] = np.array([n, H], dtype=np.int64)
            indptr = grp.create_dataset("indptr", shape=(n + 1,), dtype=np.int64)
            indptr[0] = 0
            indices = grp.create_dataset("indices", shape=(0,), maxshape=(None,), dtype=np.int32, chunks=(1 << 16,))
            data = grp.create_dataset("data", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(1 << 16,))
            nnz = 0
            zero_rows = 0
            for first, batch in iter_codes(model, emb.iter_chunks(chunk_rows), k, batch_size, method, nonneg):
                report.update(batch.rows + first, batch.indices, batch.data)
                counts = batch.counts.cpu().numpy()
                m = int(counts.sum())
                indices.resize((nnz + m,))
                data.resize((nnz + m,))
                indices[nnz:] = batch.indices.cpu().numpy().astype(np.int32)
                data[nnz:] = batch.data.cpu().numpy()
                indptr[first + 1 : first + 1 + len(counts)] = nnz + np.cumsum(counts)
                nnz += m
                zero_rows += int((counts == 0).sum())
                if progress is not None:
                    progress(first + len(counts), n)

            unit = report.result()
            word_arr = np.array(emb.words, dtype=object)
            top = np.where(unit.top_rows >= 0, word_arr[np.maximum(unit.top_rows, 0)], "")
            dims = f.create_group("dimensions")
            str_dt = h5py.string_dtype("utf-8")
            dims.create_dataset("top_words", data=top.astype(object), dtype=str_dt)
            dims.create_dataset("top_values", data=unit.top_values)
            dims.create_dataset("frequency", data=unit.frequency)
            f.create_dataset("words", data=word_arr, dtype=str_dt)
            for key, value in config_attrs(config).items():
                f.attrs[key] = value
            if k is not None:  # absent: the objective's own code (threshold or activation)
                f.attrs["encode_k"] = k
            f.attrs["encode_method"] = method
            f.attrs["encode_nonneg"] = nonneg
            f.attrs["run_dir"] = os.path.abspath(run_dir)
            f.attrs["model_fingerprint"] = model.fingerprint()  # what evaluate and report check, not the path
    return {
        "out": str(Path(out)),
        "words": n,
        "units": H,
        "k": k,
        "method": f"{method} (non-negative)" if nonneg else method,
        "nnz": nnz,
        "mean_l0": nnz / n,
        "zero_rows": zero_rows,
        "dead_units": int((unit.frequency == 0).sum()),
    }
