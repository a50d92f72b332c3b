"""compare: the optimal one-to-one matching of two runs' decoder rows, exact on hand-made rows, and
the command on two real runs of the sample."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import sparsecode as sc
from sparsecode.cli import app
from sparsecode.compare import MAX_UNITS, match_units, pair_choice
from sparsecode.errors import SparsecodeError

from .conftest import SAMPLE, SMALL
from .test_cli import one_line_error


def test_the_matching_is_the_optimal_assignment_not_the_greedy_one():
    # Cosines [[0.6, 0.5], [0.5, 0.0]]: greedy pairs a0-b0 and leaves a1-b1, 0.6 in all; the optimum
    # pairs across, 1.0.
    e = np.eye(4)
    a = np.stack([e[0], e[1]]) * 3.0  # lengths do not matter: cosines
    b = np.stack([0.6 * e[0] + 0.5 * e[1] + np.sqrt(1 - 0.61) * e[2], 0.5 * e[0] + np.sqrt(0.75) * e[3]])
    m = match_units(a, b)
    assert m.a.tolist() == [0, 1] and m.b.tolist() == [1, 0] and np.allclose(m.cosine, [0.5, 0.5])
    cos = (a / 3.0) @ b.T
    brute = max(cos[0, p[0]] + cos[1, p[1]] for p in itertools.permutations(range(2)))
    assert np.isclose(m.cosine.sum(), brute)


def test_permuted_rows_match_exactly_and_the_shares_count_pairs_above_each_threshold():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 4))
    perm = np.array([3, 0, 5, 1, 4, 2])
    m = match_units(a, a[perm])
    assert m.b.tolist() == np.argsort(perm).tolist() and np.allclose(m.cosine, 1.0)
    s = m.summary()
    assert (s["above_0.9"], s["above_0.5"], s["median"], s["matched"]) == (1.0, 1.0, pytest.approx(1.0), 6)
    # Four pairs at cosines 0.95, 0.75, 0.6 and 0.3, each row orthogonal to every other pair's.
    basis = np.eye(8)
    b = np.array([c * basis[i] + np.sqrt(1 - c * c) * basis[4 + i] for i, c in enumerate((0.95, 0.75, 0.6, 0.3))])
    s = match_units(basis[:4], b).summary()
    assert (s["above_0.9"], s["above_0.7"], s["above_0.5"]) == (0.25, 0.5, 0.75)
    assert s["median"] == pytest.approx((0.75 + 0.6) / 2) and s["mean"] == pytest.approx(0.65)


def test_any_number_of_units_on_each_side_the_same_dimension_and_a_clear_limit():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 5)), rng.standard_normal((7, 5))
    b[[6, 2, 4]] = a  # a's rows hide among b's
    m = match_units(a, b)
    assert (m.units_a, m.units_b, m.b.tolist()) == (3, 7, [6, 2, 4])
    m = match_units(b, a)
    assert m.a.tolist() == [2, 4, 6] and m.b.tolist() == [1, 2, 0]
    with pytest.raises(SparsecodeError, match="units of 5 and 4 dimensions"):
        match_units(a, rng.standard_normal((3, 4)))
    big = np.zeros((MAX_UNITS + 1, 2), dtype=np.float32)
    with pytest.raises(SparsecodeError, match="past the 8,192 units per side"):
        match_units(big, big[:10])


def test_pairs_shown_best_worst_and_seeded_random_ones():
    basis = np.eye(20)
    cosines = np.linspace(0.05, 0.95, 10)
    b = np.array([c * basis[i] + np.sqrt(1 - c * c) * basis[10 + i] for i, c in enumerate(cosines)])
    m = match_units(basis[:10], b)
    chosen = pair_choice(m, seed=3, ends=2, random=3)
    assert chosen["best"].tolist() == [9, 8] and chosen["worst"].tolist() == [0, 1]
    assert len(set(chosen["random"].tolist()) - {2, 3, 4, 5, 6, 7}) == 0 and len(chosen["random"]) == 3
    assert chosen["random"].tolist() == pair_choice(m, seed=3, ends=2, random=3)["random"].tolist()


@pytest.fixture(scope="module")
def second_run(tmp_path_factory, sample):
    out = tmp_path_factory.mktemp("seed1") / "run"
    sc.train(sample, sc.TrainConfig(**{**SMALL, "seed": 1, "hidden": 150}), out_dir=out)
    sc.encode(out, SAMPLE, out / "codes.h5", device="cpu")
    return out


def test_the_command_on_two_runs_of_the_sample(run_dir, codes_path, codes, second_run, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["compare", str(codes_path), str(second_run), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["units_a"], data["units_b"], data["matched"]) == (200, 150, 150)
    a = sc.load_run(run_dir)[0].W_dec.detach().numpy()
    b = sc.load_run(second_run)[0].W_dec.detach().numpy()
    expected = match_units(a, b)
    assert data["median"] == pytest.approx(float(np.median(expected.cosine)))
    best = data["pairs"]["best"][0]
    assert best["cosine"] == pytest.approx(float(expected.cosine.max()))
    assert best["words_a"] == [w for w, _ in codes.top_words(best["unit_a"])][:5]
    assert data["without_words"] == [] and len(data["pairs"]["random"]) == 5
    text = runner.invoke(app, ["compare", str(run_dir), str(second_run)], env={"COLUMNS": "200"}).stdout
    assert "share of pairs above cosine 0.9" in text and "best pairs" in text and best["words_a"][0] in text
    # A run directory without its codes: the matching, and a warning that the words are missing.
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("model.pt", "config.json", "metrics.jsonl", "summary.json"):
        (bare / name).write_bytes((second_run / name).read_bytes())
    result = runner.invoke(app, ["compare", str(run_dir), str(bare)])
    assert result.exit_code == 0 and "without words" in result.stderr and "sparsecode encode" in result.stderr


def test_runs_of_other_dimensions_are_refused_in_one_line(run_dir, tmp_path):
    other = tmp_path / "d300"
    emb = sc.load_embeddings(SAMPLE.parent / "spacy.300d.2k.h5")
    sc.train(emb, sc.TrainConfig(**{**SMALL, "hidden": 20, "k": 4, "epochs": 1}), out_dir=other)
    one_line_error(CliRunner().invoke(app, ["compare", str(run_dir), str(other)]), "same embeddings (the same D)")
    assert torch.is_tensor(sc.load_run(other)[0].W_dec)
