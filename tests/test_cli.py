"""The command line through Typer's runner, and once through the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import sparsecode as sc
from sparsecode.cli import app

from .conftest import SAMPLE, sample_subset, write_h5

runner = CliRunner()


def run(*args: str, ok: bool = True):
    result = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def one_line_error(result, *needles: str) -> str:
    """A user error: exit 1, exactly one 'error:' line on stderr, no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def test_version_and_help():
    assert run("--version").stdout.strip() == f"sparsecode {sc.__version__}"
    out = run("--help").stdout
    for command in ("train", "encode", "inspect", "neighbors"):
        assert command in out
    train_help = run("train", "--help").stdout
    assert "--hidden" in train_help and "1000" in train_help and "Example:" in train_help


def test_train_encode_inspect_neighbors(tmp_path):
    run_dir, codes = tmp_path / "run", tmp_path / "codes.h5"
    res = run("train", SAMPLE, "--out", run_dir, "--hidden", 150, "--k", 6, "--epochs", 2, "--device", "cpu", "--quiet")
    assert "final" in res.stdout and "FVU" in res.stdout
    assert (run_dir / "model.pt").is_file()
    res = run("encode", run_dir, SAMPLE, "--out", codes, "--top-words", 5, "--quiet")
    assert "5,000" in res.stdout
    loaded = sc.load_codes(codes)
    assert loaded.top_values_table.shape == (150, 5)

    units = json.loads(run("inspect", codes, "--json").stdout)
    assert units["n_units"] == 150 and len(units["units"]) == 150
    assert [u["frequency"] for u in units["units"]] == loaded.frequency.tolist()
    assert json.loads(run("inspect", codes, "--json", "--limit", 3).stdout)["units"][2]["unit"] == 2

    unit = json.loads(run("inspect", codes, "--dim", 7, "--json").stdout)
    assert unit["unit"] == 7 and [e["word"] for e in unit["top_words"]] == [w for w, _ in loaded.top_words(7)]
    assert "unit 7" in run("inspect", codes, "--dim", 7).stdout

    word = json.loads(run("inspect", codes, "--word", "paris", "--json").stdout)
    assert [(e["unit"], e["value"]) for e in word["active_units"]] == [
        (u, pytest.approx(v)) for u, v in loaded.active_units("paris")
    ]
    assert "'paris'" in run("inspect", codes, "--word", "paris").stdout

    dead = json.loads(run("inspect", codes, "--dead", "--json").stdout)
    assert dead["dead_units"] == loaded.dead_units().tolist()
    assert "units are dead" in run("inspect", codes, "--dead").stdout

    nbrs = json.loads(run("neighbors", codes, "king", "paris", "--top", 4, "--json").stdout)
    expected = sc.neighbors(loaded, ["king", "paris"], top=4)
    assert {w: [n["word"] for n in v] for w, v in nbrs.items()} == {w: [n for n, _ in v] for w, v in expected.items()}
    assert "nearest to 'king'" in run("neighbors", codes, "king").stdout


def test_user_errors_are_one_line_without_traceback(tmp_path, run_dir, codes_path, sample):
    one_line_error(run("train", tmp_path / "missing.h5", "--out", tmp_path / "r", ok=False), "file not found")
    one_line_error(run("train", SAMPLE, "--out", tmp_path / "r", "--k", 2000, ok=False), "larger than the hidden size")
    one_line_error(run("train", SAMPLE, "--out", tmp_path / "r", "--epochs", 0, ok=False), "--epochs must be at least 1")
    one_line_error(run("train", SAMPLE, "--out", run_dir, "--epochs", 1, ok=False), "already exists; pass --force")
    one_line_error(run("encode", run_dir, SAMPLE, "--out", codes_path, ok=False), "already exists")
    one_line_error(run("encode", tmp_path, SAMPLE, "--out", tmp_path / "c.h5", ok=False), "model weights not found")
    one_line_error(run("encode", run_dir, SAMPLE, "--out", tmp_path / "nodir" / "c.h5", ok=False), "does not exist")
    one_line_error(run("inspect", SAMPLE, ok=False), "not a sparsecode codes file")
    one_line_error(run("inspect", codes_path, "--dim", 200, ok=False), "unit 200 is out of range; units are 0 to 199")
    one_line_error(run("neighbors", codes_path, "kingg", ok=False), "did you mean 'king'")
    words, vecs = sample_subset(sample, 100)
    vecs[3] = np.nan
    bad = write_h5(tmp_path / "nan.h5", words=words, vectors=vecs)
    one_line_error(run("train", bad, "--out", tmp_path / "r", ok=False), "NaN or Inf", words[3])
    assert not (tmp_path / "r").exists() and not (tmp_path / "c.h5").exists()


def test_duplicate_words_warn_on_stderr(tmp_path):
    words = ["a", "b", "a", "c"] * 10
    vecs = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    path = write_h5(tmp_path / "dup.h5", words=words, vectors=vecs)
    res = run("train", path, "--out", tmp_path / "r", "--hidden", 4, "--k", 2, "--epochs", 1, "--quiet")
    assert "warning:" in res.stderr and "37 duplicate word(s)" in res.stderr


def test_installed_console_script_end_to_end(tmp_path):
    """The `sparsecode` script that the README's setup installs, and `python -m sparsecode`."""
    script = Path(sys.executable).parent / "sparsecode"
    assert script.exists(), f"console script not installed beside {sys.executable}"
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}

    def sh(*args, code=0):
        proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert proc.returncode == code, proc.stderr
        return proc

    sh(script, "train", SAMPLE, "--out", "run", "--hidden", 100, "--k", 5, "--epochs", 1, "--device", "cpu")
    sh(script, "encode", "run", SAMPLE, "--out", "codes.h5", "--quiet")
    units = json.loads(sh(script, "inspect", "codes.h5", "--json").stdout)
    assert len(units["units"]) == 100
    nbrs = json.loads(sh(sys.executable, "-m", "sparsecode", "neighbors", "codes.h5", "five", "--json").stdout)
    assert len(nbrs["five"]) == 10
    err = sh(script, "encode", "run", SAMPLE, "--out", "codes.h5", code=1).stderr
    assert err.strip().splitlines() == ["error: codes.h5: already exists; pass --force to overwrite it"]
