"""The training data: which rows make up each batch, read from the embeddings in chunks.

The order of an epoch is defined on *global* batches, whatever the number of processes:

1. the N rows are cut into contiguous chunks of :data:`CHUNK_ROWS`;
2. a seeded permutation of the chunks is taken :data:`BUFFER_CHUNKS` at a time: each group is a
   buffer, its rows those of its chunks in file order (when there are at most ``BUFFER_CHUNKS``
   chunks, no permutation is drawn and one buffer holds every row);
3. each buffer's rows are shuffled by a seeded permutation, drawn when the buffer is reached;
   with frequency-aware training (``rank_power`` p > 0, see :func:`rank_draws`) a buffer instead
   holds its share of N draws, each row drawn in proportion to its :func:`rank_weights` (1 for
   the first :data:`RANK_FLAT` rows, then (RANK_FLAT / rank)^p): the buffer's count is fixed by
   its rows' total weight; when it is reached each row gets its whole number of expected draws and
   the fractions are drawn, then shuffled (equal weights: a plain permutation);
4. the shuffled buffers, one after the other, are cut into batches of ``batch_size`` rows (the last
   one may be shorter), so an epoch has ceil(N / batch_size) steps.

With W processes, process r takes the r-th of W near-equal contiguous slices of every global batch
and reads only the rows of its slices (W = 1: the whole batch). Memory holds the rows of at most two
buffers (a batch may straddle two; three on a GPU, where the next one is fetched ahead), however
large the file. A buffer whose rows are the same as the
last one read (the whole data, when it fits in one buffer, in one process) is kept, not read again:
so up to ``CHUNK_ROWS * BUFFER_CHUNKS`` = 65,536 words train from memory, shuffled as a whole each
epoch, and larger files stream a buffer at a time.

On a GPU (see :mod:`sparsecode.device_cuda`) the data stays on the device when it fits
its ``DEVICE_DATA_FRACTION`` of the GPU's free memory: it is read once, and a buffer is then only
the device's index of its rows. Otherwise buffers travel through pinned host memory without
blocking the host, the next one fetched ahead on a side stream.

All randomness comes from one ``torch.Generator``, drawn in a fixed sequence (the chunk permutation,
then each buffer's permutation in turn): its state at the start of an epoch and a batch number
locate any point of training, which is all a checkpoint needs to hold (no N-sized permutation).

:func:`scan` is the one pass over all rows before training: it validates them (through
:class:`~sparsecode.embeddings.EmbeddingFile`) and computes the statistics that initialise the
model and fingerprint the data.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

import numpy as np
import torch

from .devices import Device, for_torch
from .embeddings import EmbeddingFile, Embeddings, embeddings_in_memory
from .errors import SettingError, SparsecodeError

#: Rows per chunk: the unit of reading and of the permutation of an epoch (~10 MB at D=300).
CHUNK_ROWS = 8192
#: Chunks shuffled together (a buffer): 65,536 rows, ~80 MB of float32 at D=300.
BUFFER_CHUNKS = 8
#: Rows whose spread about their mean is below this fraction of their size do not vary: nothing to learn.
LEAST_SPREAD = 1e-5
#: Frequency-aware training (``rank_power``) draws the first this many words alike, and a word of rank
#: r beyond them (RANK_FLAT / r)^rank_power as often: a small vocabulary of common words trains as it
#: is, and only a long tail is drawn less (benchmarks/INTERPRETABILITY.md).
RANK_FLAT = 10_000


class Rows(Protocol):
    """Validated float32 rows, addressable by position (0 to ``n`` - 1)."""

    n: int
    dim: int

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first, vectors)`` per chunk of :data:`CHUNK_ROWS` rows, in order, each checked for
        NaN/Inf and all-zero rows."""

    def take(self, rows: np.ndarray) -> np.ndarray:
        """(K, D) float32 rows at sorted positions ``rows`` (K,)."""

    def read(self, start: int, stop: int) -> np.ndarray:
        """(stop - start, D) float32 rows ``start`` to ``stop`` - 1 (already validated by :meth:`chunks`)."""


class ArrayRows:
    """Rows of an in-memory (N, D) array (the Python API's :class:`Embeddings`)."""

    def __init__(self, vectors: np.ndarray):
        self.vectors = vectors
        self.n, self.dim = (int(s) for s in vectors.shape)

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.n, CHUNK_ROWS):
            yield start, np.asarray(self.vectors[start : start + CHUNK_ROWS], dtype=np.float32)

    def take(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) and rows[-1] - rows[0] + 1 == len(rows):  # a contiguous range: a view, no copy
            return np.asarray(self.vectors[rows[0] : rows[-1] + 1], dtype=np.float32)
        return np.asarray(self.vectors[rows], dtype=np.float32)

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.vectors[start:stop], dtype=np.float32)


class FileRows:
    """Rows of an embeddings file, read from disk when asked for."""

    def __init__(self, file: EmbeddingFile):
        self.file = file
        self.n, self.dim = len(file), file.dim

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        return self.file.iter_chunks(CHUNK_ROWS)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self.file.read_rows(rows, span=CHUNK_ROWS)

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.file.read_rows(np.arange(start, stop), span=CHUNK_ROWS)


class SubsetRows:
    """The rows of ``rows`` at sorted positions ``positions``, renumbered 0 to K - 1 (a held-out
    split's training rows, or its held-out rows)."""

    def __init__(self, rows: Rows, positions: np.ndarray):
        self.base, self.positions = rows, np.asarray(positions, dtype=np.int64)
        self.n, self.dim = len(self.positions), rows.dim

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        done = 0
        for first, block in self.base.chunks():
            lo, hi = np.searchsorted(self.positions, [first, first + block.shape[0]])
            if hi > lo:
                yield done, block[self.positions[lo:hi] - first]
                done += int(hi - lo)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self.base.take(self.positions[rows])

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.base.take(self.positions[start:stop])


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted positions of the training rows and of the held-out rows: ``round(fraction * n)``
    rows (at least one) drawn by a generator seeded with ``seed``, the same in every process."""
    held = max(1, round(fraction * n))
    if n - held < 2:
        raise SettingError("holdout", "{holdout} {got} keeps {held:,} of {n:,} words out, leaving {left} to train on; "
                           "lower {holdout}", got=fraction, held=held, n=n, left=n - held)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    return np.sort(order[held:]), np.sort(order[:held])


@dataclass
class DataStats:
    """What one pass over the rows learns (float64 throughout)."""

    n: int
    dim: int
    mean: np.ndarray
    """(D,) the mean row."""
    sq_dev: float
    """Sum over rows of the squared distance to the mean."""
    fingerprint: list[float]
    """A cheap summary of the data, to refuse resuming on other data."""

    @property
    def varies(self) -> bool:
        """Whether the rows differ: their root mean squared distance to the mean is at least
        :data:`LEAST_SPREAD` of their root mean squared norm (float32 rounding is not variation)."""
        sum_of_squares = self.sq_dev + self.n * float(self.mean @ self.mean)
        return self.sq_dev > LEAST_SPREAD**2 * sum_of_squares

    @property
    def scale(self) -> float:
        """Root mean squared norm of the centred rows over sqrt(D) (1 when the rows are all equal)."""
        scale = math.sqrt(self.sq_dev / self.n / self.dim)
        return scale if scale > 0 else 1.0


def scan(rows: Rows) -> DataStats:
    """One streamed pass over ``rows``: validation (by the source), mean and squared deviation
    (chunks merged as Chan et al.), fingerprint. Memory holds one chunk."""
    n, dim = 0, rows.dim
    mean = np.zeros(dim)
    sq_dev = total = total_sq = first_col = 0.0
    for first, block in rows.chunks():
        x = block.astype(np.float64)
        m = x.shape[0]
        if m == 0:
            continue
        block_mean = x.mean(0)
        block_sq_dev = float(((x - block_mean) ** 2).sum())
        delta = block_mean - mean
        sq_dev += block_sq_dev + float(delta @ delta) * n * m / (n + m)
        mean += delta * (m / (n + m))
        n += m
        total += float(x.sum())
        total_sq += float((x * x).sum())
        first_col += float(x[:, 0] @ np.arange(first, first + m, dtype=np.float64))
    return DataStats(n, dim, mean, sq_dev, [float(n), float(dim), total, total_sq, first_col])


class TrainingData:
    """Validated training rows and their statistics: what :func:`sparsecode.train` consumes."""

    def __init__(self, rows: Rows, path: str, file: EmbeddingFile | None = None):
        self.rows, self.path, self._file = rows, path, file
        self.stats = scan(rows)
        if self.stats.n >= 2 and not self.stats.varies:  # the fraction of a variance of zero is no number
            raise SparsecodeError(f"{path}: all {self.stats.n:,} vectors are the same (they do not vary about their "
                                  "mean), so there is nothing to learn and FVU is undefined; train on vectors that differ")

    @property
    def n(self) -> int:
        return self.rows.n

    @property
    def dim(self) -> int:
        return self.rows.dim

    def __len__(self) -> int:
        return self.rows.n

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> "TrainingData":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_training_data(source: "Embeddings | TrainingData | str | os.PathLike") -> TrainingData:
    """Training data from a file (streamed), from embeddings in memory (:class:`Embeddings`, a
    gensim ``KeyedVectors``, an (N, D) array-like), or as it is."""
    if isinstance(source, TrainingData):
        return source
    if not isinstance(source, (str, os.PathLike)):
        source = embeddings_in_memory(source, "the training vectors")
        return TrainingData(ArrayRows(source.vectors), source.path)
    file = EmbeddingFile(source)
    try:
        return TrainingData(FileRows(file), file.path, file)
    except BaseException:
        file.close()
        raise


def rank_weights(rows: np.ndarray, power: float) -> np.ndarray:
    """float64 weights of the 0-based rows ``rows``: 1 for the first :data:`RANK_FLAT`, then
    (RANK_FLAT / r)^power at 1-based rank r."""
    return np.minimum(1.0, ((np.asarray(rows, dtype=np.float64) + 1) / RANK_FLAT) ** -power)


def rank_draws(sizes: list[int], power: float) -> np.ndarray:
    """How many of N = sum(``sizes``) draws fall in each block of consecutive rows (sizes in row
    order), in proportion to the blocks' total :func:`rank_weights` (largest remainders: the counts
    add up to N)."""
    edges = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    mass = np.array([rank_weights(np.arange(a, b), power).sum() for a, b in zip(edges[:-1], edges[1:])])
    share = mass / mass.sum() * edges[-1]
    counts = np.floor(share).astype(np.int64)
    counts[np.argsort(counts - share, kind="stable")[: int(edges[-1] - counts.sum())]] += 1
    return counts


class EpochOrder:
    """The row order of one epoch (see the module docstring), drawn from ``generator``; with
    ``rank_power`` > 0 the epoch's N rows are drawn by frequency rank instead (module docstring)."""

    def __init__(self, n: int, generator: torch.Generator, rank_power: float = 0.0):
        self.n, self.generator, self.rank_power = n, generator, rank_power
        n_chunks = math.ceil(n / CHUNK_ROWS)
        if n_chunks <= BUFFER_CHUNKS:
            self.groups = [np.arange(n_chunks)]
        else:
            order = torch.randperm(n_chunks, generator=generator).numpy()
            self.groups = [np.sort(order[i : i + BUFFER_CHUNKS]) for i in range(0, n_chunks, BUFFER_CHUNKS)]
        sizes = [sum(min(CHUNK_ROWS, n - c * CHUNK_ROWS) for c in g) for g in self.groups]
        if rank_power > 0:  # each chunk's share of the draws, summed over its buffer
            chunk_draws = rank_draws([min(CHUNK_ROWS, n - c * CHUNK_ROWS) for c in range(n_chunks)], rank_power)
            sizes = [int(chunk_draws[g].sum()) for g in self.groups]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        """Stream position where each buffer begins (and N at the end)."""
        self._perms: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.groups)

    def rows(self, j: int) -> np.ndarray:
        """Row positions of buffer ``j``, its chunks in file order."""
        return np.concatenate([np.arange(c * CHUNK_ROWS, min((c + 1) * CHUNK_ROWS, self.n)) for c in self.groups[j]])

    def perm(self, j: int) -> torch.Tensor:
        """Buffer ``j``'s shuffle, or its draws by rank: for each of its positions the index of a row
        within :meth:`rows` (int64, CPU); draws those of buffers up to ``j`` first."""
        while len(self._perms) <= j:
            i = len(self._perms)
            size = int(self.starts[i + 1] - self.starts[i])
            if self.rank_power > 0:
                self._perms.append(self._draws(torch.from_numpy(rank_weights(self.rows(i), self.rank_power)), size))
            else:
                self._perms.append(torch.randperm(size, generator=self.generator))
        return self._perms[j]

    def _draws(self, weights: torch.Tensor, size: int) -> torch.Tensor:
        """``size`` draws of rows in proportion to ``weights``, shuffled: each row its whole number of
        expected draws, and the fractions left over drawn without replacement (so a row weighing the
        average is drawn exactly once, as in a plain epoch)."""
        expected = weights * (size / weights.sum())
        counts = expected.floor()
        rest = size - int(counts.sum())
        if rest > 0:
            counts[torch.multinomial(expected - counts, rest, generator=self.generator)] += 1
        rows = torch.repeat_interleave(torch.arange(len(weights)), counts.long())
        return rows[torch.randperm(size, generator=self.generator)]

    def finish(self) -> None:
        """Draw what is left, so the generator ends every epoch in the same state."""
        self.perm(len(self) - 1)


def slice_bounds(length: int, rank: int, world: int) -> tuple[int, int]:
    """Offsets of process ``rank``'s slice of a batch of ``length`` rows split over ``world``."""
    return length * rank // world, length * (rank + 1) // world


class BatchSource:
    """This process's rows of each global batch, on the device, prepared (normalised).

    ``prepare`` turns (K, D) float32 rows on the host into what the model takes (on the device);
    ``feed`` (a :class:`~sparsecode.devices.Device`, default the CPU) carries the index maps there;
    ``rank_power`` > 0 draws each epoch's rows by frequency rank (see :class:`EpochOrder`). With
    ``prefetch`` the next buffer is loaded one step after the current one is first used (on CUDA
    on the feed's side stream, while the device works on the steps queued so far).
    :meth:`keep_resident` reads every row once and keeps them prepared on the device.
    """

    def __init__(self, rows: Rows, batch_size: int, prepare: Callable[[np.ndarray], torch.Tensor],
                 rank: int = 0, world: int = 1, feed: Device | None = None, prefetch: bool = False,
                 rank_power: float = 0.0):
        self.rows, self.batch_size, self.prepare = rows, batch_size, prepare
        self.rank_power = rank_power
        self.rank, self.world = rank, world
        self.feed = feed if feed is not None else for_torch("cpu")
        self.prefetch = prefetch
        self.steps_per_epoch = math.ceil(rows.n / batch_size)
        self.order: EpochOrder | None = None
        self._loaded: dict[int, list] = {}  # buffer -> Device.run entry of (data, index of each position)
        self._kept: tuple[np.ndarray, torch.Tensor] | None = None
        self._ahead: int | None = None  # the buffer to load ahead at the next call
        self.resident: torch.Tensor | None = None
        """(N, D) every row prepared, on the device (see :meth:`keep_resident`), or None: streamed."""

    def keep_resident(self) -> None:
        """Read every row once (a buffer's worth at a time) and keep them prepared: each buffer is
        then the index of its rows in this tensor, and nothing is read again."""
        step = CHUNK_ROWS * BUFFER_CHUNKS
        resident = None
        for start in range(0, self.rows.n, step):
            stop = min(self.rows.n, start + step)
            block = self.prepare(self.rows.read(start, stop))
            if resident is None:
                resident = block.new_empty((self.rows.n, block.shape[1]))
            resident[start:stop] = block
        self.resident = resident
        self._kept = None
        self.prefetch = False  # a buffer is then an index into the resident rows: nothing to load ahead

    def start_epoch(self, generator: torch.Generator) -> None:
        """Draw the order of a new epoch from ``generator`` (in its state at the epoch's start)."""
        self.order = EpochOrder(self.rows.n, generator, self.rank_power)
        self._loaded, self._ahead = {}, None

    def finish_epoch(self) -> None:
        self.order.finish()
        self._loaded, self._ahead = {}, None

    def global_size(self, batch: int) -> int:
        """Rows in global batch ``batch``."""
        return min(self.batch_size, self.rows.n - batch * self.batch_size)

    def local_span(self, batch: int) -> tuple[int, int]:
        """Stream positions [lo, hi) of this process's slice of global batch ``batch``."""
        start = batch * self.batch_size
        lo, hi = slice_bounds(self.global_size(batch), self.rank, self.world)
        return start + lo, start + hi

    def batch(self, batch: int) -> torch.Tensor:
        """(B_local, D) this process's rows of global batch ``batch`` (0-based, of the current epoch)."""
        if self._ahead is not None:  # asked for at the last call: the step queued since overlaps its loading
            ahead, self._ahead = self._ahead, None
            if ahead not in self._loaded and ahead < len(self.order):
                self._loaded[ahead] = self.feed.run(lambda: self._load(ahead), side=True)
        lo, hi = self.local_span(batch)
        starts = self.order.starts
        first = int(np.searchsorted(starts, lo, side="right")) - 1
        last = int(np.searchsorted(starts, max(lo, hi - 1), side="right")) - 1
        for j in [j for j in self._loaded if j < first]:
            del self._loaded[j]  # buffers behind us
        pieces = []
        for j in range(first, last + 1):
            data, pos_to_row = self._buffer(j)
            a, b = max(lo, int(starts[j])) - int(starts[j]), min(hi, int(starts[j + 1])) - int(starts[j])
            pieces.append(data[pos_to_row[a:b]])
        if self.prefetch and last + 1 not in self._loaded:
            self._ahead = last + 1
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)

    def _needed(self, j: int) -> np.ndarray:
        """Positions within buffer ``j`` (0-based) that fall in this process's slices."""
        s, e = int(self.order.starts[j]), int(self.order.starts[j + 1])
        pos = np.arange(s, e)
        if self.world == 1:
            return pos - s
        batch_start = pos // self.batch_size * self.batch_size
        length = np.minimum(self.batch_size, self.rows.n - batch_start)
        owner = ((pos - batch_start + 1) * self.world - 1) // length  # inverse of slice_bounds
        return pos[owner == self.rank] - s

    def _buffer(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Buffer ``j`` as (rows read, prepared) and, per position, the index of its row there."""
        if j not in self._loaded:
            self._loaded[j] = self.feed.run(lambda: self._load(j), side=False)
        return self.feed.ready(self._loaded[j])

    def _load(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        perm = self.order.perm(j)
        rows_j = self.order.rows(j)
        if self.resident is not None:  # every row is there: the buffer is its rows' index
            return self.resident, self.feed.tensor(rows_j[perm.numpy()])
        needed = self._needed(j)
        if len(needed) == len(perm):  # every position: the read rows are the buffer's, sorted
            unique, inverse = rows_j, perm
        else:
            unique, inv = np.unique(rows_j[perm.numpy()[needed]], return_inverse=True)
            inverse = torch.full((len(perm),), -1, dtype=torch.int64)
            inverse[torch.from_numpy(needed)] = torch.from_numpy(inv.reshape(-1).astype(np.int64))
        if self._kept is not None and np.array_equal(self._kept[0], unique):
            data = self._kept[1]
        else:
            self._kept = None  # free it before reading the next
            data = self.prepare(self.rows.take(unique))
            self._kept = (unique, data)
        return data, self.feed.tensor(inverse.numpy())
