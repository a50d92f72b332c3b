"""The command line's thread count follows the machine's load."""

from __future__ import annotations

import pytest
import torch

from sparsecode import runtime
from sparsecode.runtime import choose_threads, free_cores


@pytest.mark.parametrize("cores, load, threads", [(2, 0.1, 2), (2, 0.6, 1), (2, 1.0, 1), (2, 4.8, 1), (8, 2.2, 6),
                                                  (8, 0.0, 8), (1, 0.0, 1)])
def test_free_cores(cores, load, threads):
    assert free_cores(cores, load) == threads


def test_choose_threads_follows_the_load(monkeypatch):
    """torch's count (4 here) is the cores; the load takes its share of them."""
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        for load, threads in ((7.0, 1), (1.2, 3), (0.0, 4)):
            torch.set_num_threads(4)
            monkeypatch.setattr(runtime.os, "getloadavg", lambda: (load, 0.0, 0.0))
            assert choose_threads() == threads == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_choose_threads_leaves_omp_num_threads_alone(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", str(before))
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (before + 3.0, 0.0, 0.0))
    assert choose_threads() == before == torch.get_num_threads()
