"""The CUDA device (see :mod:`sparsecode.devices`): the training data stays on the GPU when it
fits; otherwise rows travel through pinned host memory without blocking the host, the next buffer
prepared ahead on a side stream. A job of several processes takes one GPU per process (NCCL).

On CUDA an array is copied to pinned (page-locked) memory and from there with ``non_blocking=True``,
which does not wait for the device (a copy from pageable memory does: a host sync); :meth:`run`
puts work on a side stream, whose event the current stream waits for when the result is first used
(:meth:`ready`).
"""

from __future__ import annotations

from typing import Callable, ContextManager

import numpy as np
import torch

from .devices import Device
from .errors import SparsecodeError

#: On a GPU the training data stays on the device when its float32 rows take at most this fraction of
#: the GPU's free memory when training starts (GloVe 400k x 300, 0.5 GB, on any GPU of 2 GB or more).
DEVICE_DATA_FRACTION = 0.25


class Cuda(Device):
    backend = "nccl"
    prefetch = True

    def __init__(self, device: torch.device):
        super().__init__(device)
        self._stream: torch.cuda.Stream | None = None

    @property
    def stream(self) -> torch.cuda.Stream:
        """The side stream, made on first use: made at once, it opened a context on the current GPU
        (GPU 0 in every process of a job, before :meth:`for_process` chose its own)."""
        if self._stream is None:
            self._stream = torch.cuda.Stream(self.device)
        return self._stream

    def for_process(self, rank: int, local_rank: int) -> "Cuda":
        """GPU ``local_rank``, made the current one."""
        if local_rank >= torch.cuda.device_count():
            raise SparsecodeError(f"process {rank}: no GPU {local_rank} here ({torch.cuda.device_count()} GPUs); "
                                  "start at most one process per GPU (--nproc)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        return Cuda(device)

    def scope(self) -> ContextManager:
        """A numbered GPU other than the current one is made current for the block."""
        return torch.cuda.device(self.device) if self.device.index is not None else super().scope()

    def keeps_data(self, n: int, dim: int) -> bool:
        """Within :data:`DEVICE_DATA_FRACTION` of the GPU's free memory."""
        free, _total = torch.cuda.mem_get_info(self.device)
        return n * dim * 4 <= DEVICE_DATA_FRACTION * free

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        """Through pinned memory, not waiting for the device."""
        return torch.from_numpy(np.ascontiguousarray(array)).pin_memory().to(self.device, non_blocking=True)

    def to_host(self, *tensors: torch.Tensor) -> list:
        """Into pinned memory, not waiting; the event marks the end of the copies."""
        host = tuple(torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in tensors)
        for h, t in zip(host, tensors):
            h.copy_(t, non_blocking=True)
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))
        return [host, event]

    def run(self, fn: Callable[[], tuple[torch.Tensor, ...]], side: bool) -> list:
        if not side:
            return [fn(), None]
        self.stream.wait_stream(torch.cuda.current_stream(self.device))  # after what it may read is ready
        with torch.cuda.stream(self.stream):
            out = fn()
            event = torch.cuda.Event()
            event.record(self.stream)
        return [out, event]

    def ready(self, entry: list) -> tuple[torch.Tensor, ...]:
        """Waits for the side stream's event once, on the device, and tells the allocator that the
        current stream uses the tensors."""
        out, event = entry
        if event is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(event)
            for t in out:
                t.record_stream(current)
            entry[1] = None
        return out

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)


DEVICE = Cuda
