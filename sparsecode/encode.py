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
from .config import DEVICES, resolve_device
from .embeddings import DEFAULT_CHUNK_ROWS, EmbeddingFile
from .errors import SparsecodeError
from .model import SparseAutoencoder
from .pursuit import METHODS, check_method, make_coder
from .report import UnitReport
from .topk import kept_workspace
from .train import load_run, read_json

#: Words encoded per batch on the device.
DEFAULT_BATCH = 8192
#: Default number of top words stored per unit.
DEFAULT_TOP_WORDS = 10
#: Default encoding method: the model's encoder (the other: "omp", pursuit over the decoder).
DEFAULT_METHOD = METHODS[0]


class CSRBatch(NamedTuple):
    """The non-zero entries of a batch of codes, on the device, in CSR order."""

    counts: torch.Tensor
    """(B,) int64 non-zero entries per row."""
    rows: torch.Tensor
    """(nnz,) int64 row of each entry, relative to the batch."""
    indices: torch.Tensor
    """(nnz,) int64 unit ids, increasing within each row."""
    data: torch.Tensor
    """(nnz,) float32 activations (> 0, except signed pursuit codes: non-zero)."""


@torch.no_grad()
def encode_batch(coder, x: torch.Tensor, k: int) -> CSRBatch:
    """Codes of (B, D) vectors (original scale) with ``k`` active units at most, as CSR entries.

    ``coder`` is a model (its encoder, as trained: no noise, no annealing) or a pursuit coder
    (see :func:`sparsecode.pursuit.make_coder`). Zero coefficients are left out.
    """
    enc = coder.encode(x, k)
    units, acts = enc.indices, enc.acts
    if units.shape[1] > 1 and not bool((units[:, 1:] > units[:, :-1]).all()):  # the CPU top-k gives them sorted
        units, order = units.sort(dim=1)
        acts = acts.gather(1, order)
    keep = acts != 0
    rows = torch.arange(x.shape[0], device=x.device).unsqueeze(1).expand_as(keep)
    if bool(keep.all()):  # the usual case: no zeros to leave out, no masked copies
        return CSRBatch(keep.sum(1), rows.reshape(-1), units.reshape(-1), acts.reshape(-1))
    return CSRBatch(keep.sum(1), rows[keep], units[keep], acts[keep])


def iter_codes(
    model: SparseAutoencoder, chunks: Iterator[tuple[int, np.ndarray]], k: int, batch_size: int = DEFAULT_BATCH,
    method: str = DEFAULT_METHOD, nonneg: bool = False,
) -> Iterator[tuple[int, CSRBatch]]:
    """Encode ``(first_row, vectors)`` chunks; yields ``(first_row, batch)`` per device batch."""
    device = model.W_enc.device
    coder = make_coder(model, method, nonneg)
    for first, block in chunks:
        for start in range(0, block.shape[0], batch_size):
            x = torch.from_numpy(block[start : start + batch_size]).to(device)
            yield first + start, encode_batch(coder, x, k)


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
    device: str = DEVICES[0],
    batch_size: int = DEFAULT_BATCH,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int, int], None] | None = None,
    method: str = DEFAULT_METHOD,
    nonneg: bool = False,
) -> dict:
    """Encode every word of ``embeddings_path`` with the model in ``run_dir`` into codes file ``out``.

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

    # keep_words: the codes file stores them all; the encoder's kept buffer is freed at the end.
    with kept_workspace(), EmbeddingFile(embeddings_path, keep_words=True) as emb:
        if emb.dim != model.d_in:
            raise SparsecodeError(
                f"{emb.path}: vectors have {emb.dim} dimensions but the model in {run_dir} expects {model.d_in}; "
                "encode the embeddings the model was trained on"
            )
        n = len(emb)
        # Upper bound: k entries (int32 + float32) per word, pointers, words, the unit report.
        check_space(out, n * (k or expected_l0(run_dir, H)) * 8 + (n + 1) * 8 + sum(len(w) + 16 for w in emb.words) + H * top_words * 40 + 2**20)
        report = UnitReport(H, top_words, device=dev)
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
