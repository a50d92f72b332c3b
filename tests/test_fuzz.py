"""Fuzzing: random, malformed input files never make a command print a traceback.

Every command either works or fails with exit code 1 and exactly one ``error:`` line.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import h5py
import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sparsecode.cli import app

runner = CliRunner()

DTYPES = ["float16", "float32", "float64", "int8", "int64", "bool", "S3", "complex64"]


@st.composite
def datasets(draw):
    """A dataset: a random shape, dtype and content (NaN, Inf and zeros included)."""
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=ndim, max_size=ndim)))
    dtype = draw(st.sampled_from(DTYPES + ["words"]))
    size = int(np.prod(shape)) if shape else 1
    if dtype == "words":
        pool = st.sampled_from(["the", "cat", "the", "", "é", "dog", "a b"])
        items = draw(st.lists(pool, min_size=size, max_size=size))
        return np.array(items, dtype=object).reshape(shape), h5py.string_dtype("utf-8")
    if dtype == "S3":
        raw = draw(st.lists(st.binary(min_size=0, max_size=3), min_size=size, max_size=size))
        return np.array(raw, dtype="S3").reshape(shape), None
    values = draw(st.lists(st.sampled_from([0.0, 1.0, -2.5, 3.25, np.nan, np.inf, 1e30]), min_size=size, max_size=size))
    with np.errstate(invalid="ignore", over="ignore"):
        return np.array(values).reshape(shape).astype(dtype), None


@st.composite
def embedding_files(draw):
    """Bytes of a file: random bytes, or an HDF5 file with random or plausible words/vectors."""
    kind = draw(st.sampled_from(["bytes", "h5-random", "h5-plausible", "h5-plausible", "codes"]))
    if kind == "bytes":
        return ("bytes", draw(st.binary(max_size=64)))
    if kind == "codes":
        return ("codes", draw(codes_corruptions()))
    entries = {}
    if kind == "h5-random":
        for name in draw(st.lists(st.sampled_from(["words", "vectors", "codes", "other"]), max_size=3, unique=True)):
            entries[name] = draw(datasets())
    else:
        n = draw(st.integers(1, 6))
        d = draw(st.integers(1, 4))
        words = draw(st.lists(st.sampled_from(["the", "cat", "dog", "sat", "on", "mat", "a"]), min_size=n, max_size=n))
        vec = draw(st.lists(st.floats(0.1, 3.0) | st.floats(-3.0, -0.1), min_size=n * d, max_size=n * d))
        if draw(st.booleans()) and draw(st.booleans()):
            vec[draw(st.integers(0, n * d - 1))] = draw(st.sampled_from([np.nan, np.inf]))
        entries["words"] = (np.array(words, dtype=object), h5py.string_dtype("utf-8"))
        entries["vectors"] = (np.array(vec, dtype=np.float32).reshape(n, d), None)
    return ("h5", entries)


@st.composite
def codes_corruptions(draw):
    """One way to damage a real codes file: drop, shorten or overwrite a dataset or attribute."""
    target = draw(st.sampled_from(["codes/indptr", "codes/indices", "codes/data", "words", "dimensions/top_words",
                                   "dimensions/top_values", "dimensions/frequency", "shape"]))
    how = draw(st.sampled_from(["drop", "shorten", "scramble"]))
    return target, how, draw(st.integers(0, 2**31 - 1))


def _corrupt(path: Path, source: Path, target: str, how: str, seed: int) -> None:
    path.write_bytes(source.read_bytes())
    rng = np.random.default_rng(seed)
    with h5py.File(path, "r+") as f:
        if target == "shape":
            f["codes"].attrs["shape"] = {"drop": [5000], "shorten": [4999, 200], "scramble": [5000, 3]}[how]
            return
        data = f[target][...]
        del f[target]
        if how == "drop":
            return
        if how == "shorten":
            data = data[: len(data) // 2]
        elif data.dtype.kind in "iuf":
            data = rng.permutation(data.reshape(-1)).reshape(data.shape) * rng.choice([-1, 1])
        else:
            data = data[::-1]
        f.create_dataset(target, data=data)


def _write(path: Path, spec, codes_path: Path) -> None:
    kind, payload = spec
    if kind == "bytes":
        path.write_bytes(payload)
        return
    if kind == "codes":
        _corrupt(path, codes_path, *payload)
        return
    with h5py.File(path, "w") as f:
        for name, (data, dtype) in payload.items():
            f.create_dataset(name, data=data, dtype=dtype)


def _clean(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code != 0:
        assert result.exit_code == 1, result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.stderr


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=embedding_files())
def test_every_command_fails_cleanly_on_malformed_files(spec, run_dir, codes_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add overhead
    try:
        _run_every_command(spec, run_dir, codes_path)
    finally:
        torch.set_num_threads(threads)  # the other tests keep the machine's setting


def _run_every_command(spec, run_dir: Path, codes_path: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "input.h5"
        _write(path, spec, codes_path)
        _clean(runner.invoke(app, ["train", str(path), "--out", str(tmp / "run"), "--hidden", "4", "--k", "2",
                                   "--epochs", "1", "--batch-size", "2", "--device", "cpu", "--quiet"]))
        _clean(runner.invoke(app, ["encode", str(run_dir), str(path), "--out", str(tmp / "codes.h5"), "--quiet"]))
        _clean(runner.invoke(app, ["inspect", str(path)]))
        _clean(runner.invoke(app, ["neighbors", str(path), "the"]))
        _clean(runner.invoke(app, ["inspect", str(path), "--word", "the", "--json"]))
        _clean(runner.invoke(app, ["evaluate", str(path), "--model", str(run_dir)]))
        # A file that failed left no output behind.
        leftovers = {p.name for p in tmp.iterdir()} - {"input.h5", "run", "codes.h5"}
        assert not leftovers, leftovers
