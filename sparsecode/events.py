"""What a training run reports while it runs: one small dataclass per event.

:func:`sparsecode.train` calls its ``events`` callback with each of them, in this order:
:class:`Converting` (while a text input is converted, repeatedly), :class:`Started` (once the data
is open and the run prepared, resumed or not), :class:`Progress` (at every report point, and at
the end of every epoch with ``epoch_end``), :class:`Collapse` (when the code collapses during
training, at the report point that saw it), :class:`Checkpoint`, :class:`Finished` (with the result). The command line renders them;
the estimator and ``tradeoff`` pass them on. In a job of several processes, process 0 alone
reports. Nothing here imports torch: the events hold plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union


@dataclass
class Converting:
    """A text or binary input being converted to the HDF5 that training reads (see :mod:`sparsecode.convert`)."""

    done: int
    """Bytes read so far."""
    size: int
    """The input file's size in bytes."""
    words: int
    """Words converted so far."""


@dataclass
class Started:
    """The run is prepared: the data open, the run directory ready, the checkpoint (if any) loaded."""

    words: int
    """Words in the data (the held-out ones included)."""
    dim: int
    """Dimensions of the input vectors."""
    source: str
    """The file training reads (the converted one for a text input), or ``(in memory)``."""
    converted_from: str | None = None
    """The input file that ``source`` was converted from; None when it is read as it is."""
    processes: int = 1
    """Processes in the job."""
    resumed_from: int | None = None
    """The step the run continues from (a checkpoint's); None for a run from its start."""


@dataclass
class Progress:
    """A report point: what the progress callback receives."""

    epoch: int
    """1-based epoch."""
    step: int
    """Steps done so far, over all epochs."""
    total_steps: int
    loss: float
    """Mean loss over the epoch so far."""
    fvu: float
    """FVU over the epoch so far (training batches, training k)."""
    dead_fraction: float
    """Fraction of units that are dead for AuxK right now."""
    epoch_end: bool = False
    metrics: dict | None = None
    """The epoch's metrics line, at the end of an epoch."""
    epoch_step: int = 0
    """Steps done so far in this epoch (``epoch_steps`` at its end)."""
    epoch_steps: int = 0
    """Steps per epoch."""
    seconds: float = 0.0
    """Training time so far (over every session of a resumed run)."""


@dataclass
class Checkpoint:
    """A checkpoint was written to the run directory."""

    step: int
    """The step it holds."""


@dataclass
class Collapse:
    """The code collapsed during training, at the end of an epoch (see :func:`sparsecode.interpret.collapse_during_training`)."""

    epoch: int
    message: str
    """One line: what collapsed, from what, and what to try."""


@dataclass
class Finished:
    """Training has finished and its files (with a run directory) are written."""

    result: Any
    """The :class:`~sparsecode.rundir.TrainResult`."""


Event = Union[Converting, Started, Progress, Checkpoint, Collapse, Finished]


def progress_only(progress: Callable[[Progress], None]) -> Callable[[Event], None]:
    """An events callback that passes only the :class:`Progress` events on to ``progress``."""
    return lambda event: progress(event) if isinstance(event, Progress) else None
