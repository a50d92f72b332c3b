"""Process-wide settings for speed, which the command line applies at start-up.

:func:`keep_freed_memory`: glibc hands every freed block of more than 128 KiB (a threshold it
raises as it goes) back to the kernel, so the next allocation of that size is page-faulted in and
zeroed again. A training step frees and allocates several (H, D) and (B, H) temporaries (3.6 MB and
12 MB at H=3000, D=300, B=1024): 600-900 page faults per step, about 1 ms of system time on the
2-core development machines. With the mmap threshold at glibc's maximum (32 MiB) and a trim
threshold of 256 MiB, such blocks stay in the heap for the next step (22 faults per step). Larger
blocks are still returned at once, so memory held beyond the peak stays bounded.

:func:`batch_rows`: how many words to encode at a time, so that the blocks a batch allocates stay
within that threshold on a CPU.
"""

from __future__ import annotations

import ctypes
import sys

import torch

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Ask glibc's malloc to keep freed blocks below ``mmap_threshold`` bytes for reuse; True if it did.

    Does nothing (False) where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


#: Words encoded per batch on the device, at most.
DEFAULT_BATCH = 8192
#: On a CPU, a batch's (B, H) float32 pre-activations stay within this: glibc maps blocks of its
#: mmap threshold or more afresh (32 MiB, the most it can be, is what :func:`keep_freed_memory`
#: sets) and hands them back at once, so each batch's would be page-faulted in again. 31 MiB leaves
#: room for the allocator's own bytes. Measured at 400k x 300 into 4,096 units, one pass over 200k
#: words: batches of 8,192 words (128 MiB) 4.0-4.2 s with 800,000 page faults and 1.4 s of system
#: time; of 2,048 (32 MiB and a little) the same; of 2,040 3.2 s and no faults; of 1,024 3.4 s.
CPU_BATCH_BYTES = 31 << 20


def batch_rows(n_hidden: int, device: torch.device | str) -> int:
    """Words per encoding batch when none is given: :data:`DEFAULT_BATCH`, fewer on a CPU for wide models."""
    if torch.device(device).type != "cpu":
        return DEFAULT_BATCH
    return max(256, min(DEFAULT_BATCH, CPU_BATCH_BYTES // (4 * n_hidden)))
