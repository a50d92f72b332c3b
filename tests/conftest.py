"""Shared fixtures: the real sample data, and one small model trained and encoded on it."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import sparsecode as sc

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "glove.6B.50d.5k.h5"

#: Small enough to train in a few seconds on 2 cores, large enough to be meaningful.
SMALL = dict(hidden=200, k=8, epochs=3, batch_size=256, seed=0, device="cpu")


@pytest.fixture(scope="session")
def sample() -> sc.Embeddings:
    return sc.load_embeddings(SAMPLE)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, sample) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    sc.train(sample, sc.TrainConfig(**SMALL), out_dir=out)
    return out


@pytest.fixture(scope="session")
def codes_path(tmp_path_factory, run_dir) -> Path:
    out = tmp_path_factory.mktemp("codes") / "codes.h5"
    sc.encode(run_dir, SAMPLE, out, top_words=10, device="cpu")
    return out


@pytest.fixture(scope="session")
def codes(codes_path) -> sc.Codes:
    return sc.load_codes(codes_path)


def write_h5(path: Path, **datasets) -> Path:
    """Write an HDF5 file with the given datasets (strings lists become UTF-8 string datasets)."""
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            if isinstance(data, list) and data and isinstance(data[0], str):
                f.create_dataset(name, data=np.array(data, dtype=object), dtype=h5py.string_dtype("utf-8"))
            else:
                f.create_dataset(name, data=data)
    return path


def stop_at(step: int):
    """A progress callback that interrupts training (as Ctrl-C would) once ``step`` steps are done."""

    def callback(progress) -> None:
        if progress.step >= step:
            raise KeyboardInterrupt

    return callback


def sample_subset(sample: sc.Embeddings, n: int) -> tuple[list[str], np.ndarray]:
    return list(sample.words[:n]), sample.vectors[:n].copy()


@pytest.fixture(autouse=True)
def _no_stray_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        yield


#: Operators that read a device tensor back to the host (a sync on CUDA): scalar reads (item, bool,
#: int, float), data-dependent sizes (nonzero, masked_select, boolean indexing, bincount), equal.
HOST_READS = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.bincount.default",
              "aten.equal.default", "aten.masked_select.default", "aten.item.default"}


def host_reads_of(fn) -> list[str]:
    """The operators of ``fn()`` that would read back to the host on CUDA, as dispatched from Python.

    On a CPU the step takes its CPU fast paths (numpy selection, radix sort, a sortedness check); the
    caller points those to their CUDA forms first (see ``cuda_code_paths``)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    found: list[str] = []

    class Audit(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = str(func)
            bool_index = name.startswith("aten.index.") and any(
                isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] if i is not None)
            if name in HOST_READS or bool_index:
                found.append(name)
            return func(*args, **(kwargs or {}))

    with Audit():
        fn()
    return found


@pytest.fixture()
def cuda_code_paths(monkeypatch):
    """The top-k core as it runs on CUDA, on the CPU: torch.topk (sparsecode.cpu_kernels off)."""
    from sparsecode import cpu_kernels

    monkeypatch.setattr(cpu_kernels, "ENABLED", False)
