"""Process-wide settings for speed, which the command line applies at start-up.

:func:`keep_freed_memory`: glibc hands every freed block of more than 128 KiB (a threshold it
raises as it goes) back to the kernel, so the next allocation of that size is page-faulted in and
zeroed again. A training step frees and allocates several (H, D) and (B, H) temporaries (3.6 MB and
12 MB at H=3000, D=300, B=1024): 600-900 page faults per step, about 1 ms of system time on the
2-core development machines. With the mmap threshold at glibc's maximum (32 MiB) and a trim
threshold of 256 MiB, such blocks stay in the heap for the next step (22 faults per step). Larger
blocks are still returned at once, so memory held beyond the peak stays bounded.
"""

from __future__ import annotations

import ctypes
import sys

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
