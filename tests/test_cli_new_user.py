"""What a new user tried (issue 24): a model file alone, and mistakes made on purpose, each of them
one line on stderr and a non-zero exit, never a traceback, a box or a number that is not one."""

from __future__ import annotations

import dataclasses
import math
import shutil

import numpy as np
import pytest
import torch

import sparsecode as sc
from sparsecode.cli import app
from sparsecode import training
from sparsecode.errors import first_line
from sparsecode.training import training_bytes

from .conftest import SAMPLE
from .test_cli import one_line_error, run, runner


def test_train_refuses_vectors_that_do_not_vary(tmp_path):
    two = tmp_path / "two.txt"
    two.write_text("a 0.1 0.2 0.3\nb 0.1 0.2 0.3\n")
    line = one_line_error(run("train", two, "--out", tmp_path / "run", "--quiet", ok=False))
    assert line.endswith(": all 2 vectors are the same (they do not vary about their mean), so there is nothing to "
                         "learn and FVU is undefined; train on vectors that differ")


def test_encode_takes_a_model_pt_alone(tmp_path, run_dir, codes):
    """model.pt records all that encoding needs: a folder that holds only it, or the file itself."""
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(run_dir / "model.pt", alone / "model.pt")
    assert run("encode", alone, SAMPLE, "--quiet").stdout.splitlines()[0] == f"wrote {alone / 'codes.h5'}"
    by_folder = sc.load_codes(alone / "codes.h5")
    (alone / "codes.h5").unlink()
    assert run("encode", alone / "model.pt", SAMPLE, "--quiet").stdout.splitlines()[0] == f"wrote {alone / 'codes.h5'}"
    by_file = sc.load_codes(alone / "codes.h5")
    for made in (by_folder, by_file):
        assert made.words == codes.words
        np.testing.assert_array_equal(made.dense(np.arange(50)), codes.dense(np.arange(50)))


FLOAT_SETTINGS = [f.name for f in dataclasses.fields(sc.TrainConfig) if "float" in str(f.type)]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_every_float_setting_refuses_nan_and_infinities(bad):
    assert {"lr", "homeostasis", "aux_coef", "balance", "holdout", "noise", "rho"} <= set(FLOAT_SETTINGS)
    for name in FLOAT_SETTINGS:
        with pytest.raises(sc.SettingError) as exc:
            sc.TrainConfig(**{name: bad}).validate()
        assert (exc.value.setting, str(exc.value)) == (name, f"{name} must be a finite number (got {bad})")


def test_float_options_refuse_nan_and_infinities_in_one_line(tmp_path):
    for option, value in (("--homeostasis", "inf"), ("--lr", "inf"), ("--aux-coef", "nan"), ("--lr", "nan")):
        line = one_line_error(run("train", SAMPLE, "--out", tmp_path / "run", option, value, ok=False))
        assert line == f"error: {option} must be a finite number (got {value})"
    assert not (tmp_path / "run").exists()


def test_a_command_line_that_does_not_parse_is_one_line():
    """Typer drew a box with the usage around these; now each is one line and exit status 2."""
    cases = {
        ("train", SAMPLE, "--k", "3.5"): "error: --k must be a whole number (got '3.5')",
        ("train", SAMPLE, "--epochs", "1e3"): "error: --epochs must be a whole number (got '1e3')",
        ("train", SAMPLE, "--lr", "fast"): "error: --lr must be a number (got 'fast')",
        ("inspect", "c.h5", "--dim", "x"): "error: --dim must be a whole number (got 'x')",
        ("convert", SAMPLE, "--out", "x.h5", "--format", "csv"):
            "error: --format: 'csv' is not one of 'auto', 'glove', 'word2vec', 'word2vec-bin', 'fasttext', 'npy'",
        ("train",): "error: missing argument 'EMBEDDINGS'; see 'sparsecode train --help'",
        ("hepl",): "error: no such command 'hepl'; see 'sparsecode --help'",
        ("--bogus",): "error: no such option: --bogus; see 'sparsecode --help'",
    }
    for args, expected in cases.items():
        result = runner.invoke(app, [str(a) for a in args], prog_name="sparsecode")
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", expected + "\n"), args


def test_h_and_help_show_the_help():
    top, train = run("--help").stdout, run("train", "--help").stdout
    assert "Usage: root [OPTIONS] COMMAND" in top and "Usage: root train [OPTIONS] EMBEDDINGS" in train
    assert run("-h").stdout == run("help").stdout == top
    assert run("train", "-h").stdout == run("help", "train").stdout == train


def test_first_line_drops_colour_codes_and_cuts_whole_sentences():
    coloured = ValueError("load failed, \x1b[1mdo this only if you trust it\x1b[0m.\n\t(1) details")
    assert first_line(coloured) == "load failed, do this only if you trust it."
    long = RuntimeError("Reading failed: no central directory. This is an internal error. If you see it, there is a "
                       "high likelihood that the file is corrupted.")
    assert first_line(long, 80) == "Reading failed: no central directory. This is an internal error"
    assert first_line(long, 40) == "Reading failed: no central directory"
    assert first_line(RuntimeError("one sentence that goes on and on without an end"), 20) == "one sentence that..."


def test_a_model_pt_with_a_pickled_object_or_cut_short_is_one_plain_line(tmp_path, run_dir):
    pickled, cut = tmp_path / "pickled", tmp_path / "cut"
    pickled.mkdir()
    cut.mkdir()
    torch.save({"W_enc": torch.zeros(2), "extra": np.arange(3)}, pickled / "model.pt")
    (cut / "model.pt").write_bytes((run_dir / "model.pt").read_bytes()[:1000])
    line = one_line_error(run("encode", pickled, SAMPLE, "--out", tmp_path / "c.h5", ok=False))
    assert "\\x1b" not in line and "\x1b" not in line
    assert line.startswith(f"error: {pickled / 'model.pt'}: cannot load model weights safely: it holds a pickled Python "
                           "object (numpy.")
    assert line.endswith("which sparsecode never loads (weights_only=True); give a model.pt that sparsecode wrote")
    line = one_line_error(run("encode", cut, SAMPLE, "--out", tmp_path / "c.h5", ok=False))
    assert line == (f"error: {cut / 'model.pt'}: cannot load model weights safely (PytorchStreamReader failed reading "
                    "zip archive: failed finding central directory): the file is truncated or corrupt; copy it again, "
                    "or train again")


def test_memory_is_checked_before_training_as_disk_space_is(tmp_path, monkeypatch):
    """--hidden 3000000 failed in a 60 GB allocation with a 63-line traceback: the run's needs are
    now checked against the free memory first, one line, and nothing is written."""
    # Weights 50x10 twice, b_enc 10, b_dec 50: 1,060 values, with gradients and Adam's moments 4 times;
    # a batch of 4 rows x 10 units 3 times; k-means's 3 x 10 cosines twice; float32.
    assert training_bytes(3, 50, sc.TrainConfig(hidden=10, batch_size=4)) == 4 * (4 * 1060 + 3 * 40 + 2 * 30)
    assert training_bytes(3, 50, sc.TrainConfig(hidden=10, batch_size=4, init="random")) == 4 * (4 * 1060 + 3 * 40)
    line = one_line_error(run("train", SAMPLE, "--out", tmp_path / "run", "--hidden", 10**9, "--quiet", ok=False))
    assert line.startswith("error: --hidden 1000000000: training needs about 44,688.0 GB of memory but this machine has ")
    assert line.endswith(" GB free; lower --hidden or --batch-size")
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(training, "free_memory", lambda device: 10**7)  # 10 MB free: the sample's model does not fit
    with pytest.raises(sc.SettingError) as exc:
        sc.train(SAMPLE, sc.TrainConfig(hidden=2000, k=8, epochs=1, device="cpu"))
    assert str(exc.value) == ("hidden 2000: training needs about 89 MB of memory but this machine has 10 MB free; "
                              "lower hidden or batch_size")
