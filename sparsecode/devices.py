"""What differs between devices, behind one object resolved once from the ``device`` setting.

A :class:`Device` says where the training data lives and how rows read on the host reach it
(:meth:`~Device.tensor`, :meth:`~Device.to_host`, work queued ahead with :meth:`~Device.run`), which
optimizer runs, how the host waits for it (:meth:`~Device.synchronize`), which torch.distributed
backend a job of several processes uses and which device each of its processes takes
(:meth:`~Device.for_process`). This class is the CPU; every other device type ``T`` is one module,
``sparsecode/device_T.py``, whose ``DEVICE`` subclasses it (:mod:`sparsecode.device_cuda`).
The top-k core (:mod:`sparsecode.topk`) stays pure tensor code: its CPU fast paths
(:mod:`sparsecode.cpu_kernels`) go by the tensors' own device.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Callable, ContextManager

import numpy as np
import torch

from .config import resolve_device


class Device:
    """The CPU: the data is streamed from the file (memory stays bounded), an array read is used
    as it is (no copy), nothing runs ahead and nothing needs waiting for."""

    backend = "gloo"
    """The torch.distributed backend of a job of several processes on this device type."""
    prefetch = False
    """Whether the next buffer of rows is prepared ahead, on a side stream."""

    def __init__(self, device: torch.device):
        self.device = device

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.device})"

    def for_process(self, rank: int, local_rank: int) -> "Device":
        """The device process ``rank`` (``local_rank`` on its machine) of a job takes: the CPU is shared."""
        return self

    def scope(self) -> ContextManager:
        """A block in which this device is the current one (streams, generators default to it)."""
        return contextlib.nullcontext()

    # -- where the data lives and how it is fed -----------------------------------------------------
    def keeps_data(self, n: int, dim: int) -> bool:
        """Whether (n, dim) float32 training rows stay on the device (a CPU streams them)."""
        return False

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        """``array`` on the device."""
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    def to_host(self, *tensors: torch.Tensor) -> list:
        """Start copying device ``tensors`` to the host: ``[host tensors, event]``; :meth:`wait` returns them."""
        return [tensors, None]

    @staticmethod
    def wait(entry: list) -> tuple[torch.Tensor, ...]:
        """The host tensors of a :meth:`to_host` entry, once their copy is done (the one wait)."""
        if entry[1] is not None:
            entry[1].synchronize()
            entry[1] = None
        return entry[0]

    def run(self, fn: Callable[[], tuple[torch.Tensor, ...]], side: bool) -> list:
        """``[fn(), event]``: with ``side``, where the device has a side stream, fn's work queues there
        and the event marks its end; otherwise it runs as usual (event None)."""
        return [fn(), None]

    def ready(self, entry: list) -> tuple[torch.Tensor, ...]:
        """The tensors of a :meth:`run` entry, usable on the current stream."""
        return entry[0]

    # -- kernels and waiting -------------------------------------------------------------------------
    def optimizer(self, params: list[torch.nn.Parameter], lr: float):
        """Adam over ``params`` (see :mod:`sparsecode.optim`; loaded here, so encoding does not load it)."""
        from .optim import make_adam

        return make_adam(params, lr)

    def synchronize(self) -> None:
        """Wait until the work queued on the device is done (before a clock is read)."""


def for_torch(device: torch.device | str) -> Device:
    """The :class:`Device` of a torch device (from ``sparsecode/device_<type>.py`` but for the CPU)."""
    device = torch.device(device)
    if device.type == "cpu":
        return Device(device)
    return importlib.import_module(f"{__package__}.device_{device.type}").DEVICE(device)


def resolve(name: str) -> Device:
    """The device of a ``device`` setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``): checked and
    resolved once (see :func:`~sparsecode.config.resolve_device`)."""
    return for_torch(resolve_device(name))
