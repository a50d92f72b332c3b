"""What a new user tried (issue 24): a model file alone, and mistakes made on purpose, each of them
one line on stderr and a non-zero exit, never a traceback, a box or a number that is not one."""

from __future__ import annotations

import dataclasses
import math
import shutil

import numpy as np
import pytest

import sparsecode as sc

from .conftest import SAMPLE
from .test_cli import one_line_error, run


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
