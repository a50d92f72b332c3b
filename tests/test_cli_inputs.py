"""What a user hands the commands, as a new user would: no --out, a rerun of an interrupted run,
codes of another model, a run or embeddings that moved, text embeddings, words that are not plain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import sparsecode as sc
from sparsecode.train import default_run_dir

from .conftest import SAMPLE, stop_at
from .test_cli import one_line_error, run

#: A model that trains in about a second on the sample.
TINY = ("--hidden", 50, "--k", 4, "--epochs", 2, "--device", "cpu")
TINY_CFG = dict(hidden=50, k=4, epochs=2, device="cpu")


def test_train_and_encode_without_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run("train", SAMPLE, *TINY)
    assert "the run goes to runs/glove.6B.50d.5k/ (no --out given)" in res.stderr
    assert "trained runs/glove.6B.50d.5k" in res.stdout
    assert sorted(p.name for p in (tmp_path / "runs" / "glove.6B.50d.5k").iterdir()) == [
        "config.json", "metrics.jsonl", "model.pt", "summary.json"]
    res = run("encode", "runs/glove.6B.50d.5k", SAMPLE, "--quiet")
    assert res.stdout.splitlines()[0] == "wrote runs/glove.6B.50d.5k/codes.h5"
    assert len(sc.load_codes(tmp_path / "runs" / "glove.6B.50d.5k" / "codes.h5").words) == 5000
    # The default is a run directory like any other: a second run is refused, not overwritten.
    line = one_line_error(run("train", SAMPLE, *TINY, ok=False))
    assert line == "error: runs/glove.6B.50d.5k: already exists; pass --force to overwrite it"


def test_default_run_dir_drops_the_endings_of_embeddings_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = {"glove.6B.50d.txt.gz": "glove.6B.50d", "wiki.en.vec": "wiki.en", "vectors.bin": "vectors",
             "emb.h5": "emb", "m.npy.gz": "m", ".h5": ".h5", "corpus.v2": "corpus.v2"}
    for given, expected in names.items():
        assert default_run_dir(tmp_path / "data" / given) == Path("runs") / expected
    assert (tmp_path / "runs").is_dir()


def test_rerun_of_an_interrupted_train_says_resume(tmp_path, sample):
    out = tmp_path / "int"
    with pytest.raises(sc.errors.TrainingInterrupted):
        sc.train(sample, sc.TrainConfig(**TINY_CFG), out_dir=out, progress=stop_at(27))
    line = one_line_error(run("train", SAMPLE, "--out", out, *TINY, "--quiet", ok=False))
    assert line == (f"error: {out}: holds a checkpoint from step 27: rerun with --resume to continue, "
                    "or --force to start again")
    assert [p.name for p in out.iterdir()] == ["checkpoint.pt"]  # nothing touched
    run("train", SAMPLE, "--out", out, *TINY, "--quiet", "--resume")
    assert (out / "model.pt").is_file() and not (out / "checkpoint.pt").exists()
