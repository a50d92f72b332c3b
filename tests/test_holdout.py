"""train --holdout: a seeded fraction of the words kept out of training, reported every epoch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import sparsecode as sc
from sparsecode.cli import app
from sparsecode.data import ArrayRows, SubsetRows, holdout_split
from sparsecode.evaluate import CodeStatistics

from .conftest import SAMPLE
from .test_cli import one_line_error

TINY = dict(hidden=50, k=4, epochs=2, device="cpu")


def test_split_is_seeded_disjoint_and_complete():
    train, held = holdout_split(5000, 0.2, seed=3)
    assert len(held) == 1000 and len(train) == 4000
    assert np.array_equal(np.sort(np.concatenate([train, held])), np.arange(5000))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(held) > 0)
    again, other = holdout_split(5000, 0.2, seed=3), holdout_split(5000, 0.2, seed=4)
    assert np.array_equal(again[1], held) and not np.array_equal(other[1], held)
    assert len(holdout_split(10, 0.01, seed=0)[1]) == 1  # at least one word
    with pytest.raises(sc.SparsecodeError, match="^holdout 0.9 keeps 9 of 10 words out, leaving 1 to train on; lower holdout$"):
        holdout_split(10, 0.9, seed=0)


def test_subset_rows_read_the_rows_they_name():
    x = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    positions = np.array([1, 2, 5, 17, 30, 39])
    sub = SubsetRows(ArrayRows(x), positions)
    assert (sub.n, sub.dim) == (6, 3)
    assert np.array_equal(np.concatenate([b for _, b in sub.chunks()]), x[positions])
    assert np.array_equal(sub.take(np.array([0, 3, 5])), x[[1, 17, 39]])
    assert np.array_equal(sub.read(2, 5), x[[5, 17, 30]])


def test_holdout_trains_on_the_rest_and_reports_the_held_out_words(tmp_path, sample):
    run = tmp_path / "run"
    result = sc.train(sample, sc.TrainConfig(**TINY, holdout=0.2), out_dir=run)
    train_rows, held_rows = holdout_split(5000, 0.2, seed=0)
    assert (result.run_info["n_words"], result.run_info["holdout_words"]) == (4000, 1000)

    # Exactly the training of the other 4,000 words alone: nothing of the held-out words got in.
    alone = sc.train(sc.Embeddings([sample.words[i] for i in train_rows], sample.vectors[train_rows], "subset"),
                     sc.TrainConfig(**TINY))
    for name, tensor in alone.model.weights().items():
        assert torch.equal(result.model.weights()[name], tensor), name
    assert [{k: v for k, v in m.items() if not k.startswith("holdout_") and k != "seconds"} for m in result.metrics] \
        == [{k: v for k, v in m.items() if k != "seconds"} for m in alone.metrics]

    # Their figures: the final model's, recomputed here, in the summary and the last epoch's line.
    # (FVU about the mean of the training rows as the model reconstructs them: topk's cosine geometry)
    with torch.no_grad():
        mean = result.model.reconstruction_target(torch.from_numpy(sample.vectors[train_rows])).double().mean(0).float()
    stats = CodeStatistics(result.model, 4, mean)
    stats.update(torch.from_numpy(sample.vectors[held_rows]))
    expected = stats.result()
    s = result.summary
    assert s["holdout_words"] == 1000
    assert s["holdout_fvu"] == pytest.approx(expected["fvu"], rel=1e-6)
    assert s["holdout_dead_fraction"] == expected["dead_fraction"]
    assert result.metrics[-1]["holdout_fvu"] == s["holdout_fvu"]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [sorted(k for k in m if k.startswith("holdout_")) for m in lines] == \
        [["holdout_dead_fraction", "holdout_fvu", "holdout_mean_l0"]] * 2
    assert json.loads((run / "summary.json").read_text())["holdout_fvu"] == s["holdout_fvu"]

    # encode still codes every word; the report's epoch table shows the held-out columns.
    codes = sc.encode(run, SAMPLE, device="cpu")
    assert len(codes.words) == 5000
    sc.write_report(run, codes, tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert '<th class="num">held-out FVU</th><th class="num">held-out dead units</th>' in html


def test_cli_shows_the_held_out_figures_beside_the_training_ones(tmp_path):
    result = CliRunner().invoke(app, ["train", str(SAMPLE), "--out", str(tmp_path / "r"), "--hidden", "50", "--k", "4",
                                      "--epochs", "2", "--holdout", "0.2", "--device", "cpu"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    lines = result.stdout.splitlines()
    header = lines[next(i for i, line in enumerate(lines) if line.startswith("epoch")) - 2:][:3]
    assert [h.split()[-2:] for h in header[:2]] == [["held", "held"], ["out", "out"]]
    assert header[2].split()[-3:] == ["FVU", "dead", "%"]  # the last two columns: held out FVU, held out dead %
    final = next(line for line in lines if line.startswith("final"))
    assert final.split()[-2:] == [f"{summary['holdout_fvu']:.4f}", f"{100 * summary['holdout_dead_fraction']:.1f}"]
    assert (f"final: the 4,000 training words encoded with k=4; cosine(x, x̂) {summary['cosine']:.3f}; the 1,000 "
            f"held-out words: FVU {summary['holdout_fvu']:.4f}") in result.stdout
    assert "20% of the words held out" in result.stderr
    one_line_error(CliRunner().invoke(app, ["train", str(SAMPLE), "--out", str(tmp_path / "x"), "--holdout", "1"]),
                   "--holdout must be a fraction, at least 0 and below 1 (got 1.0)")
