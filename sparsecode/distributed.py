"""Training on several processes with torch.distributed: launched by ``torchrun``, or by
``sparsecode train --nproc N``, which starts torchrun's launcher in-process.

A process learns its place from the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``...). Without it, or with ``WORLD_SIZE=1``, :class:`Distributed`
is a plain single process, a job of one: every method here then hands back the process's own
figures, without a collective and at no cost (the training step has one code path for any number
of processes).

What the processes share, per step (see :meth:`Distributed.reduce_sums`): each one holds its slice
of the global batch (:mod:`sparsecode.data`); one all-reduce adds up what the loss and the
statistics need over the whole batch (its size, the squared deviation that divides the FVU, the
residual's moments for AuxK, each unit's fire count, whether a stop was asked for), then
DistributedDataParallel all-reduces the gradients. Each process's loss is its share of the global
batch's, times ``world`` (:meth:`Distributed.ddp_share`), since DDP averages the gradients. The
objectives that need batch statistics take them over the global batch too
(:meth:`Distributed.all_gather` for BatchTopK's k·B largest, :meth:`Distributed.sum_with_local_grad`
for the firing rates of KL and SPINE). Nothing is read back to the host within a step. Every
process thus computes the same update and the same dead units, and keeps identical parameters,
optimizer state and statistics: any of them holds the whole training state, which process 0
checkpoints.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import re
import sys
from typing import Callable, Iterator, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .devices import resolve
from .errors import SparsecodeError, first_line, need
from .objectives import spread

T = TypeVar("T")

#: Seconds a process waits for the others in one collective before giving up.
TIMEOUT_S = 600


class ProcessLost(SparsecodeError):
    """Another process of the job failed or was stopped, so this one cannot go on."""


def _is_comm_failure(exc: BaseException) -> bool:
    """An error from a collective whose peer has gone (gloo and NCCL raise RuntimeError subclasses)."""
    if not isinstance(exc, RuntimeError) or isinstance(exc, SparsecodeError):
        return False
    dist_error = getattr(dist, "DistError", None)
    if dist_error is not None and isinstance(exc, dist_error):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("connection", "peer", "gloo", "nccl", "timed out", "broken pipe", "socket"))


def _first_line(exc: BaseException) -> str:
    """:func:`~sparsecode.errors.first_line` of a collective's error, without the source location
    gloo puts in front of it and the generic advice it goes on with after the first sentence."""
    line = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", first_line(exc))
    return line.split(". ")[0].rstrip(".")[:160]


class Distributed:
    """This process's place in a torch.distributed job; ``world == 1`` is a plain single process."""

    def __init__(self, device: torch.device | None, rank: int = 0, world: int = 1, local_rank: int = 0):
        self.device, self.rank, self.world, self.local_rank = device, rank, world, local_rank

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- collectives ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def collective(self, what: str) -> Iterator[None]:
        """Turn a collective that fails because a peer has gone into :class:`ProcessLost`."""
        try:
            yield
        except RuntimeError as exc:
            if self.active and _is_comm_failure(exc):
                raise ProcessLost(f"another process of the job stopped (process {self.rank} of {self.world} "
                                  f"lost it during {what}: {_first_line(exc)})") from None
            raise

    def all_reduce(self, tensor: Tensor, what: str = "a step") -> Tensor:
        """Sum ``tensor`` over the processes, in place; returns it."""
        if self.active:
            with self.collective(what):
                dist.all_reduce(tensor)
        return tensor

    def sum_with_local_grad(self, tensor: Tensor) -> Tensor:
        """The sum of ``tensor`` over the processes, whose gradient flows back to this process's
        ``tensor`` times ``world``: DistributedDataParallel averages the gradients of the processes,
        and the average of these is the gradient of the sum (as one process with the whole batch
        would have it)."""
        if not self.active:
            return tensor
        total = self.all_reduce(tensor.detach().clone())
        return total + self.ddp_share(tensor - tensor.detach())

    def ddp_share(self, term: Tensor) -> Tensor:
        """This process's ``term`` of a loss over the global batch, as its loss carries it: times
        ``world``, because DistributedDataParallel averages the processes' gradients (the mean of the
        shares is the global term, and so is the mean of their gradients). ``term`` itself in one
        process."""
        return term * self.world if self.active else term

    def mean(self, tensor: Tensor, what: str = "a step") -> Tensor:
        """The mean of ``tensor`` over the processes (a new tensor); ``tensor`` itself in one process."""
        return self.all_reduce(tensor / self.world, what) if self.active else tensor

    def all_gather(self, tensor: Tensor) -> Tensor:
        """The (n,) ``tensor`` of every process, concatenated in rank order: (world * n,), no gradient."""
        if not self.active:
            return tensor.detach()
        parts = [torch.empty_like(tensor) for _ in range(self.world)]
        with self.collective("a step"):
            dist.all_gather(parts, tensor.detach().contiguous())
        return torch.cat(parts)

    def from_main(self, fn: Callable[[], T], what: str) -> T:
        """Run ``fn`` on process 0 only and hand its result (or its error) to every process."""
        if not self.active:
            return fn()
        box: list = [None]
        error = None
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except SparsecodeError as exc:
                box[0], error = ("error", str(exc)), exc
        with self.collective(what):
            dist.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            # Process 0, which speaks for all, raises the error itself (a SettingError keeps its setting).
            raise error if error is not None else SparsecodeError(value)
        return value

    def agree(self, fn: Callable[[], T], what: str) -> T:
        """Run ``fn`` on every process; if it fails on any, every process raises the first error
        (so that a user error, found by every process, is one line from process 0)."""
        if not self.active:
            return fn()
        own = None
        try:
            result = fn()
        except SparsecodeError as exc:
            result, own = None, exc
        errors: list = [None] * self.world
        with self.collective(what):
            dist.all_gather_object(errors, None if own is None else str(own))
        failed = [(r, e) for r, e in enumerate(errors) if e is not None]
        if failed:
            rank, message = failed[0]
            if all(e == message for _, e in failed) and len(failed) == self.world:
                raise own  # every process found it: each raises its own (a SettingError keeps its setting)
            raise SparsecodeError(f"process {rank}: {message}")
        return result

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` under DistributedDataParallel (its gradients all-reduced in backward)."""
        if not self.active:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        with self.collective("start-up"):
            return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)

    def reduce_sums(self, sums: dict[str, Tensor], what: str = "a step") -> dict[str, Tensor]:
        """``sums`` (name -> this process's sums, a tensor of any shape) added up over the processes,
        by name, in one all-reduce: flattened once into one float64 buffer on the device and split
        back into each entry's shape and dtype. Nothing is read back to the host. In one process
        the batch is the global batch: ``sums`` itself, no copy, no collective."""
        if not self.active:
            return sums
        total = self.all_reduce(torch.cat([t.detach().double().reshape(-1) for t in sums.values()]), what)
        parts = total.split([t.numel() for t in sums.values()])
        return {name: part.reshape(t.shape).to(t.dtype) for (name, t), part in zip(sums.items(), parts)}

    def spread_sums(self, residual: Tensor) -> dict[str, Tensor]:
        """What :meth:`spread_of` needs of this process's (B, D) ``residual``, by name, for
        :meth:`reduce_sums`: in one process its :func:`spread` itself; else the sum of its squares
        and its column sums (float64), from which the global batch's spread follows."""
        if not self.active:
            return {"residual_var": spread(residual)}
        r = residual.double()
        return {"residual_sq": r.pow(2).sum(), "residual_sum": r.sum(0)}

    def spread_of(self, total: dict[str, Tensor], rows: int) -> Tensor:
        """0-d float32: the squared deviation of the global batch's residual about its mean, from the
        :meth:`reduce_sums` of :meth:`spread_sums` over its ``rows`` rows."""
        if not self.active:
            return total["residual_var"]
        s1 = total["residual_sum"]
        return (total["residual_sq"] - s1.dot(s1) / max(rows, 1)).float()

    def close(self) -> None:
        """Leave the job once every process is done (a barrier), after DDP's reducers are gone
        (collected first: one freed after its process group makes the process abort)."""
        if self.active and dist.is_initialized():
            gc.collect()
            with contextlib.suppress(RuntimeError):  # a peer already gone: nothing to wait for
                dist.barrier()
            dist.destroy_process_group()


def check_device_for(processes: int, device: str) -> None:
    """Refuse one numbered GPU (``cuda:N``) for a job of several processes, which take one GPU each."""
    need(processes == 1 or not device.startswith("cuda:"), "device",
         "{device} {got} names one GPU, but each of the {n} processes takes its own (GPU LOCAL_RANK): use "
         "{device} cuda or auto, and CUDA_VISIBLE_DEVICES to choose the GPUs", got=device, n=processes)


def from_environment(device: str) -> Distributed:
    """The job this process belongs to, from torchrun's environment; joins it (once) when there
    is one. ``device`` is the ``--device`` setting: ``auto`` takes GPU ``LOCAL_RANK`` when there
    are GPUs (backend NCCL), else the CPU (backend gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(None)  # the device is resolved where it is used, as before
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    check_device_for(world, device)
    dev = resolve(device).for_process(rank, local_rank)
    if not dist.is_initialized():
        dist.init_process_group(dev.backend, timeout=datetime.timedelta(seconds=TIMEOUT_S))
    return Distributed(dev.device, dist.get_rank(), dist.get_world_size(), local_rank)


@contextlib.contextmanager
def session(device: str) -> Iterator[Distributed]:
    """:func:`from_environment` for the span of a command; leaves the job when it is done (if it
    joined it). Signals are held off while joining, so that a stop cannot split the job."""
    joined = dist.is_available() and dist.is_initialized()
    d = from_environment(device)
    yield d  # on an error the process group is left as it is: the others may be anywhere (or gone),
    if not joined:  # and tearing it down could hang or abort before the error is reported
        d.close()


def current_rank() -> int:
    """0, or this process's rank in a torch.distributed job (from the environment)."""
    return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0


# -- sparsecode train --nproc N --------------------------------------------------------------------
def launch(nproc: int, argv: list[str]) -> int:
    """Run ``python -m sparsecode ARGV`` in ``nproc`` processes on this machine, with torchrun's
    launcher (``torch.distributed.launcher``), in this process; returns the exit code.

    Exit codes: 0 when every process succeeded; otherwise that of the first process that failed
    (1 for one killed by a signal), or 128 + the signal that stopped the launcher (Ctrl-C: 130).
    """
    import logging
    import uuid

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    for name, logger in list(logging.root.manager.loggerDict.items()):  # its log lines: our processes say it all
        if name.startswith("torch.distributed") and isinstance(logger, logging.Logger):
            logger.setLevel(logging.CRITICAL)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1)
    try:
        elastic_launch(config, sys.executable)("-m", "sparsecode", *argv)
        return 0
    except ChildFailedError as exc:
        # The processes have said what happened (process 0 for the job; a survivor when a peer was
        # lost); a process killed by a signal says nothing, and the survivors' line covers it.
        failures = exc.failures
        code = failures[min(failures, key=lambda r: failures[r].timestamp)].exitcode
        return code if code > 0 else 1
    except SignalException as exc:  # Ctrl-C or SIGTERM: the processes were stopped and checkpointed
        return 128 + int(exc.sigval)
