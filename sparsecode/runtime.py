"""The thread count, which the command line chooses at start-up, and the memory this machine has
free (:func:`free_memory`, what training checks its needs against before it starts).

:func:`choose_threads`: torch runs one OpenMP thread per core, and its threads wait for each other
at every operator; on cores that other processes keep busy a step then waits for the thread that
is not running (10-20x slower than one thread at a load of 2-5 on 2 cores). Unless the user set
``OMP_NUM_THREADS``, the thread count is the cores left free by the machine's load when the
command starts, at least one (``benchmarks/bench_threads.py`` measures it beside a competing process).
"""

from __future__ import annotations

import os

import torch


def free_cores(cores: int, load: float) -> int:
    """Threads to run on ``cores`` cores at a 1-minute ``load``: the cores the load leaves idle,
    rounded to the nearest, at least one."""
    return max(1, min(cores, int(cores - load + 0.5)))


def choose_threads() -> int:
    """Set torch's thread count from the machine's load (see the module docstring); return it.

    Leaves torch's count (one per core) as it is when ``OMP_NUM_THREADS`` is set: the user's (or
    ``--nproc``'s) choice.
    """
    if os.environ.get("OMP_NUM_THREADS") or not hasattr(os, "getloadavg"):
        return torch.get_num_threads()
    threads = free_cores(torch.get_num_threads(), os.getloadavg()[0])
    torch.set_num_threads(threads)
    return threads


def free_memory(device=None) -> int | None:
    """Bytes that can still be allocated on ``device`` (a ``torch.device``; None or CPU: this
    machine's memory): a GPU's free memory; on Linux, ``MemAvailable`` plus free swap, within the
    cgroup's limit when one is set. None where it cannot be told."""
    if device is not None and device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh if line.split()[1:]}
        free = info["MemAvailable"] + info.get("SwapFree", 0)
    except (OSError, KeyError, ValueError):
        return None
    limit = _cgroup_headroom()
    return free if limit is None else min(free, limit)


def _cgroup_headroom() -> int | None:
    """What a cgroup v2 memory limit leaves (``memory.max`` - ``memory.current``), or None."""
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        with open("/sys/fs/cgroup/memory.current") as fh:
            current = int(fh.read().strip())
    except (OSError, ValueError):
        return None
    return None if limit == "max" or not limit.isdigit() else max(0, int(limit) - current)
