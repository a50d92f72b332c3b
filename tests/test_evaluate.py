"""Evaluation: reconstruction of stored codes, sparsity health, word similarity, DistRatio."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import sparsecode as sc
from sparsecode.cli import app
from sparsecode.evaluate import (
    DEFAULT_WORDSIM_DIR,
    code_statistics,
    dist_ratio_from_rankings,
    evaluate,
    rankdata,
    read_wordsim,
    spearman,
    word_similarity,
)
from sparsecode.model import SparseAutoencoder

from .conftest import SAMPLE


def _naive_spearman(a, b):
    """Pearson correlation of average ranks, ranks computed by counting (O(n^2))."""
    def ranks(v):
        v = list(v)
        return np.array([sum(u < x for u in v) + (sum(u == x for u in v) + 1) / 2 for x in v])
    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def test_rankdata_averages_ties_and_spearman_matches_a_naive_count():
    np.testing.assert_array_equal(rankdata([10, 20, 20, 5, 20]), [2, 4, 4, 1, 4])
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 40).astype(float)
    b = a + rng.normal(size=40)
    assert spearman(a, b) == pytest.approx(_naive_spearman(a, b), abs=1e-12)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_read_wordsim_copes_with_crlf_and_shipped_files():
    files = sorted(p.stem for p in DEFAULT_WORDSIM_DIR.glob("*.txt"))
    assert len(files) == 13 and "EN-SIMLEX-999" in files
    ws = read_wordsim(DEFAULT_WORDSIM_DIR / "EN-WS-353-ALL.txt")  # CRLF line endings
    assert len(ws) == 353 and ws[0] == ("love", "sex", 6.77)
    assert len(read_wordsim(DEFAULT_WORDSIM_DIR / "EN-SIMLEX-999.txt")) == 999


def test_word_similarity_protocol_on_dense_sample(sample):
    scores = word_similarity(sample.words, lambda rows: sample.vectors[rows])
    vocab = set(sample.words)
    for name in ("EN-WS-353-ALL", "EN-RG-65"):
        pairs = read_wordsim(DEFAULT_WORDSIM_DIR / f"{name}.txt")
        found = [(a.lower(), b.lower(), s) for a, b, s in pairs if a.lower() in vocab and b.lower() in vocab]
        assert scores[name]["found"] == len(found) and scores[name]["skipped"] == len(pairs) - len(found)
        idx = {w: i for i, w in enumerate(sample.words)}
        cos = [float(np.dot(sample.vectors[idx[a]], sample.vectors[idx[b]])
                     / np.linalg.norm(sample.vectors[idx[a]]) / np.linalg.norm(sample.vectors[idx[b]])) for a, b, _ in found]
        assert scores[name]["spearman"] == pytest.approx(_naive_spearman(cos, [s for *_, s in found]), abs=1e-6)


def test_dist_ratio_on_a_hand_made_example():
    # Dimension 0's top words sit on a unit square's corners plus its centre; the only possible
    # intruder (row 5) lies 10 away from the centre along x.
    vectors = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [0.5, 0.5], [10.5, 0.5], [3, 3]], dtype=float)
    top5 = [np.arange(5), np.array([6])]
    top10 = [np.arange(5), np.array([5])]
    result = dist_ratio_from_rankings(top5, top10, lambda dim, cand: np.ones(len(cand), bool), vectors, seed=0)
    pts = vectors[:5]
    intra = np.mean([np.linalg.norm(p - q) for p, q in itertools.permutations(pts, 2)])
    inter = np.mean([np.linalg.norm(p - vectors[5]) for p in pts])
    assert result == {"dist_ratio": pytest.approx(inter / intra), "dimensions": 1, "skipped": 1}


def test_reconstruction_of_stored_codes_equals_the_models_own(codes, run_dir, sample):
    model = SparseAutoencoder.load(run_dir / "model.pt")
    result = evaluate(codes, model, sample.vectors, wordsim_dir=None)
    direct = code_statistics(model, torch.from_numpy(sample.vectors), k=8)
    assert result["reconstruction"]["fvu"] == pytest.approx(direct["fvu"], rel=1e-5)
    assert result["reconstruction"]["cosine"] == pytest.approx(direct["cosine"], rel=1e-5)
    sp = result["sparsity"]
    assert sp["mean_l0"] == pytest.approx(direct["mean_l0"])
    assert sp["dead_fraction"] == pytest.approx(direct["dead_fraction"])
    assert sp["zero_rows_fraction"] == pytest.approx(direct["zero_rows_fraction"])
    assert sum(sp["l0_histogram"].values()) == 5000
    assert sp["dead_units"] == len(codes.dead_units())
    dr = result["dist_ratio"]
    assert dr["dense"]["dimensions"] == 50 and dr["codes"]["dimensions"] + dr["codes"]["skipped"] == 200
    # Same seed, same DistRatio.
    again = evaluate(codes, model, sample.vectors, wordsim_dir=None)["dist_ratio"]
    assert again == dr


def test_evaluate_cli_json(codes_path, run_dir):
    res = CliRunner().invoke(app, ["evaluate", str(codes_path), "--model", str(run_dir), "--embeddings", str(SAMPLE), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data) >= {"reconstruction", "sparsity", "word_similarity", "dist_ratio"}
    ws = data["word_similarity"]
    assert set(ws["codes"]) == set(ws["dense"]) and len(ws["codes"]) == 13
    assert ws["dense"]["EN-WS-353-ALL"]["found"] == ws["codes"]["EN-WS-353-ALL"]["found"] > 100
    table = CliRunner().invoke(app, ["evaluate", str(codes_path), "--model", str(run_dir), "--embeddings", str(SAMPLE)])
    assert table.exit_code == 0 and "EN-SIMLEX-999" in table.stdout and "DistRatio" in table.stdout


def test_evaluate_without_embeddings_reports_codes_only(codes):
    result = evaluate(codes, wordsim_dir=DEFAULT_WORDSIM_DIR)
    assert "reconstruction" not in result and "dense" not in result["word_similarity"]
    assert result["word_similarity"]["codes"]["EN-MEN-TR-3k"]["spearman"] is not None


def test_evaluate_errors(tmp_path, codes):
    with pytest.raises(sc.SparsecodeError, match="no word-similarity files"):
        evaluate(codes, wordsim_dir=tmp_path)


def test_evaluate_compare_methods(codes_path, run_dir):
    res = CliRunner().invoke(app, ["evaluate", str(codes_path), "--model", str(run_dir), "--embeddings", str(SAMPLE),
                                   "--compare-methods", "--json"])
    assert res.exit_code == 0, res.output
    methods = json.loads(res.stdout)["methods"]
    assert methods["k"] == 8 and set(methods) == {"k", "encoder", "omp", "omp_nonneg"}
    # Pursuit over the same dictionary reconstructs at least as well as the encoder's guess.
    assert methods["omp"]["fvu"] <= methods["omp_nonneg"]["fvu"] <= methods["encoder"]["fvu"]
    stored = json.loads(res.stdout)["reconstruction"]["fvu"]
    assert methods["encoder"]["fvu"] == pytest.approx(stored, rel=1e-5)
    table = CliRunner().invoke(app, ["evaluate", str(codes_path), "--model", str(run_dir), "--embeddings", str(SAMPLE),
                                     "--compare-methods"])
    assert table.exit_code == 0 and "omp_nonneg" in table.stdout
