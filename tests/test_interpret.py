"""What units mean: balance and WordNet supersense purity, with exact values on hand-made codes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import sparsecode as sc
from sparsecode.cli import app
from sparsecode.evaluate import balance_of_codes, coherence_of_codes, unit_table
from sparsecode.interpret import (
    LEXNAMES,
    SUPERSENSE_TABLE,
    chance_purity,
    chance_strict_purity,
    coherence,
    collapse_warning,
    is_word,
    lexicon,
    non_words_of_rankings,
    load_supersenses,
    purity_of_rankings,
    ranked_rows_of_codes,
    ranked_rows_of_dense,
    sense_matrix,
    strict_purity_of_rankings,
    unit_balance,
)

from .conftest import ROOT

ANIMAL, ARTIFACT, MOTION, FOOD = (LEXNAMES.index(n) for n in ("noun.animal", "noun.artifact", "verb.motion", "noun.food"))

#: A hand-made table: which supersenses each word has.
TABLE = {
    "cat": (ANIMAL,), "dog": (ANIMAL, MOTION), "cow": (ANIMAL,), "car": (ARTIFACT,), "bus": (ARTIFACT, MOTION),
    "run": (MOTION,), "walk": (MOTION,), "bread": (FOOD,), "milk": (FOOD,), "tea": (FOOD,),
}
WORDS = ["cat", "dog", "cow", "car", "bus", "qzx", "run", "walk", "bread", "milk", "tea", "zzq"]


def _csr(rows_of_units: dict[int, list[tuple[int, float]]], n_words: int):
    """CSR arrays from {unit: [(row, activation), ...]}."""
    per_row: list[list[tuple[int, float]]] = [[] for _ in range(n_words)]
    for unit, entries in rows_of_units.items():
        for row, value in entries:
            per_row[row].append((unit, value))
    indptr = np.cumsum([0] + [len(r) for r in per_row]).astype(np.int64)
    indices = np.array([u for r in per_row for u, _ in sorted(r)], dtype=np.int32)
    data = np.array([v for r in per_row for _, v in sorted(r)], dtype=np.float32)
    return indptr, indices, data


def test_unit_balance_exact_values():
    bal = unit_balance(np.array([4, 4, 0, 0]), n_words=4, mass=np.array([3.0, 1.0, 0.0, 0.0]))
    assert bal["effective_units"] == pytest.approx(2.0)  # two units, equal shares
    assert bal["even_share"] == 2.0
    assert bal["starved_units"] == 2 and bal["starved_fraction"] == 0.5  # the two dead ones
    assert bal["busy_units"] == 0
    assert bal["busiest_rate"] == 1.0
    assert bal["top10_mass_share"] == 0.75  # ceil(0.4) = 1 unit holds 3 of 4

    freq = np.array([100] + [1] * 9 + [0, 0])
    bal = unit_balance(freq, n_words=100)
    p = np.array([100] + [1] * 9) / 109
    assert bal["effective_units"] == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    assert bal["starved_units"] == 2  # below 109/12/10 = 0.91 words: the two unused
    assert bal["busy_units"] == 1  # above 109/12*10 = 90.8 words
    assert bal["busiest_rate"] == 1.0
    assert "top10_mass_share" not in bal


def test_collapse_warning_names_the_collapse_and_what_to_try():
    line = collapse_warning({"effective_units": 88.0, "units": 1000, "starved_fraction": 0.911, "busiest_rate": 0.86})
    assert line.startswith("the code has collapsed onto about 88 of 1000 units (91% starved, the busiest on 86%")
    assert "--k" in line
    assert collapse_warning({"effective_units": 743.0, "units": 1000, "starved_fraction": 0.005, "busiest_rate": 0.09}) is None


def test_purity_by_hand():
    senses = sense_matrix(WORDS, TABLE)
    assert senses.sum() == 12 and not senses[5].any() and not senses[11].any()
    # Unit 0: cat, dog, cow, car, bus and an unknown word: 5 known; animal 3 of 5.
    # Unit 1: run, walk, dog, bus (4 known: skipped). Unit 2: bread, milk, tea, walk, cat: food 3 of 5.
    # Unit 3: unused.
    units = {
        0: [(0, 5.0), (5, 4.5), (1, 4.0), (2, 3.0), (3, 2.0), (4, 1.0)],
        1: [(6, 2.0), (7, 1.5), (1, 1.0), (4, 0.5)],
        2: [(8, 1.0), (9, 1.0), (10, 1.0), (7, 0.9), (0, 0.1)],
    }
    indptr, indices, data = _csr(units, len(WORDS))
    ranked = ranked_rows_of_codes(indptr, indices, data, 4, limit=len(WORDS))
    np.testing.assert_array_equal(ranked[0, :7], [0, 5, 1, 2, 3, 4, -1])
    np.testing.assert_array_equal(ranked[2, :5], [8, 9, 10, 7, 0])  # equal activations: earlier row first
    assert (ranked[3] == -1).all()
    purity = purity_of_rankings(ranked, senses)
    assert purity[0] == pytest.approx(0.6)
    assert np.isnan(purity[1]) and np.isnan(purity[3])
    assert purity[2] == pytest.approx(0.6)

    coh = coherence(WORDS, indptr, indices, data, 4, table=TABLE)
    summary = coh.summary()
    assert summary["purity"] == pytest.approx(0.6)
    assert summary["units_measured"] == 2 and summary["units_skipped"] == 2
    assert summary["coverage"] == pytest.approx(10 / 12)


def test_strict_purity_readable_units_and_non_words_by_hand():
    words = ["cats", "dog", "cow", "car", "bus", "qzx", "run", "walked", "bread", "milk", "tea", "202-383-7824", "walks"]
    # Unit 0: cats (a cat, through the morphology), qzx, dog, cow, car, bus: animal 3 of 10.
    # Unit 1: run, walked, dog, bus, cats: motion 4 of 10 (walked -> walk).
    # Unit 2: bread, milk, tea, 202-383-7824, cow, cats, dog, car, bus, qzx, run (11 words: the first
    # 10 count): food 3, animal 3 -> 0.3, one non-word. Unit 3: unused: 0, no words.
    # Unit 4: run, walked, dog, bus, walks: motion 5 of 10, readable.
    units = {
        0: [(0, 5.0), (5, 4.5), (1, 4.0), (2, 3.0), (3, 2.0), (4, 1.0)],
        1: [(6, 2.0), (7, 1.5), (1, 1.0), (4, 0.5), (0, 0.1)],
        2: [(8, 9.0), (9, 8.0), (10, 7.0), (11, 6.0), (2, 5.0), (0, 4.0), (1, 3.0), (3, 2.0), (4, 1.5), (5, 1.2),
            (6, 1.0)],
        4: [(6, 1.0), (7, 1.0), (1, 1.0), (4, 1.0), (12, 1.0)],
    }
    indptr, indices, data = _csr(units, len(words))
    ranked = ranked_rows_of_codes(indptr, indices, data, 5, limit=len(words))
    lex = lexicon(words, TABLE)
    np.testing.assert_array_equal(lex.words, [True] * 11 + [False, True])
    assert lex.coverage == pytest.approx(8 / 13)  # cats, walked, walks are no lemmas; qzx and the number unknown
    assert lex.strict.any(1).sum() == 11  # cats, walked and walks through the morphology
    strict = strict_purity_of_rankings(ranked, lex.strict)
    np.testing.assert_allclose(strict, [0.3, 0.4, 0.3, 0.0, 0.5])
    assert strict_purity_of_rankings(ranked, lex.senses)[0] == pytest.approx(0.2)  # as written: cats a miss
    non_words, slots = non_words_of_rankings(ranked, lex.words)
    np.testing.assert_array_equal(non_words, [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(slots, [6, 5, 10, 0, 5])

    summary = coherence(words, indptr, indices, data, 5, table=TABLE).summary()
    assert summary["strict_purity"] == pytest.approx(1.5 / 5)
    assert summary["readable_units"] == pytest.approx(1 / 5)  # unit 4 only: 5 of its 10 slots share animal
    assert summary["non_words"] == pytest.approx(1 / 26)
    assert summary["baselines"] == {}  # no vectors, no dense dimensions


def test_strict_chance_exact_cases():
    words = [f"w{i}" for i in range(10)]
    assert chance_strict_purity(sense_matrix(words, {w: (ANIMAL,) for w in words}), seed=1) == 1.0
    assert chance_strict_purity(sense_matrix(words, {w: (i,) for i, w in enumerate(words)}), seed=1) == pytest.approx(0.1)
    assert chance_strict_purity(sense_matrix(words, {"w0": (ANIMAL,)}), seed=1) == pytest.approx(0.1)  # unknown: misses
    assert np.isnan(chance_strict_purity(sense_matrix(words[:9], {}), seed=1))


def test_what_is_a_word():
    for token in ("dog", "o'neill", "well-known", "'s", "pā", "naïve", "Müller", "हिन्दी", "東京", "rock’n’roll"):
        assert is_word(token), token
    for token in ("202-383-7824", "http://www.nasdaq.com", "1990s", "a_b", "--", "'", "", "u.s.", "a/b", "x2"):
        assert not is_word(token), token


def test_only_the_first_words_count_and_the_top_ten_known():
    # Twelve known animal-or-food words used by one unit; only the first 10 known count.
    words = [f"a{i}" for i in range(6)] + [f"f{i}" for i in range(6)]
    table = {w: (ANIMAL,) if w.startswith("a") else (FOOD,) for w in words}
    senses = sense_matrix(words, table)
    ranked = np.array([list(range(12))])
    assert purity_of_rankings(ranked, senses)[0] == pytest.approx(0.6)  # a0..a5, f0..f3: 6 of 10
    # Rows past the limit are not ranked at all.
    indptr, indices, data = _csr({0: [(i, 12.0 - i) for i in range(12)]}, 12)
    np.testing.assert_array_equal(ranked_rows_of_codes(indptr, indices, data, 1, limit=5)[0, :6], [0, 1, 2, 3, 4, -1])


def test_dense_rankings_take_the_largest_values():
    v = np.array([[0.0, 3.0], [2.0, 1.0], [1.0, 2.0], [3.0, 0.0]])
    np.testing.assert_array_equal(ranked_rows_of_dense(v, limit=4, top=3), [[3, 1, 2], [0, 2, 1]])
    np.testing.assert_array_equal(ranked_rows_of_dense(v, limit=2, top=3), [[1, 0], [0, 1]])


def test_chance_purity_exact_cases():
    words = [f"w{i}" for i in range(10)]
    same = sense_matrix(words, {w: (ANIMAL,) for w in words})
    assert chance_purity(same, seed=3) == 1.0
    distinct = sense_matrix(words, {w: (i,) for i, w in enumerate(words)})
    assert chance_purity(distinct, seed=3) == pytest.approx(0.1)  # every set is the ten words
    words20 = [f"w{i}" for i in range(20)]
    halves = sense_matrix(words20, {w: (ANIMAL if i < 10 else FOOD,) for i, w in enumerate(words20)})
    a, b = chance_purity(halves, seed=5), chance_purity(halves, seed=5)
    assert a == b and 0.5 <= a <= 1.0
    assert chance_purity(halves, seed=5) != chance_purity(halves, seed=6)


def test_low_coverage_vocabulary_is_not_measured():
    words = ["chien", "chat", "vache", "voiture", "dog"]
    indptr, indices, data = _csr({0: [(i, 1.0) for i in range(5)]}, 5)
    assert coherence(words[:4], np.arange(5), indices[:4], data[:4], 1, table=TABLE) is None  # none known
    assert coherence(words, indptr, indices, data, 1, table=TABLE) is not None  # 1 of 5 known: 20%, the floor


def test_shipped_supersense_table():
    table = load_supersenses()
    assert len(table) > 80_000
    assert table["dog"] == (ANIMAL, MOTION)
    assert table["bread"] == (FOOD, LEXNAMES.index("verb.contact"))
    assert LEXNAMES[table["quickly"][0]] == "adv.all"
    notice = SUPERSENSE_TABLE.parent / "WORDNET-LICENSE"
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in notice.read_text()


def test_balance_and_unit_table_of_real_codes(codes):
    bal = balance_of_codes(codes)
    assert bal == unit_balance(codes.frequency, len(codes.words),
                               np.bincount(codes.indices, weights=np.abs(codes.data), minlength=codes.n_units))
    coh = coherence_of_codes(codes)
    by_id = unit_table(codes)
    assert [r["unit"] for r in by_id] == list(range(codes.n_units))
    assert [r["purity"] for r in by_id] == [None if np.isnan(p) else float(p) for p in coh.per_unit]
    by_freq = [r["frequency"] for r in unit_table(codes, "frequency")]
    assert by_freq == sorted(by_freq, reverse=True)
    pur = [r["purity"] for r in unit_table(codes, "coherence")]
    measured = [p for p in pur if p is not None]
    assert measured == sorted(measured, reverse=True) and pur[: len(measured)] == measured
    with pytest.raises(sc.SparsecodeError, match="sort must be one of id, frequency, coherence"):
        unit_table(codes, "size")


def test_evaluate_and_inspect_show_balance_and_purity(codes_path, codes):
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", str(codes_path), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["balance"]["effective_units"] == pytest.approx(balance_of_codes(codes)["effective_units"])
    coh = coherence_of_codes(codes, sc.load_embeddings(ROOT / "sample_data" / "glove.6B.50d.5k.h5").vectors)
    assert data["coherence"]["purity"] == pytest.approx(coh.summary()["purity"])
    assert data["coherence"]["dense"] == pytest.approx(coh.dense)
    text = runner.invoke(app, ["evaluate", str(codes_path)]).stdout
    assert "effective units" in text and "purity (WordNet supersenses; chance" in text

    res = runner.invoke(app, ["inspect", str(codes_path), "--sort", "coherence", "--limit", "3", "--json"])
    rows = json.loads(res.stdout)["units"]
    assert [r["unit"] for r in rows] == [r["unit"] for r in unit_table(codes, "coherence")[:3]]
    res = runner.invoke(app, ["inspect", str(codes_path), "--sort", "coherence", "--limit", "3"])
    assert res.exit_code == 0 and "purity" in res.stdout


def test_evaluate_shows_strict_purity_beside_the_dense_dimensions_and_kmeans_clusters(codes_path, codes, sample):
    from sparsecode.clusters import cluster_measures

    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", str(codes_path), "--json", "--baselines", "--seed", "3"])
    assert res.exit_code == 0, res.output
    coh = json.loads(res.stdout)["coherence"]
    want = coherence_of_codes(codes, sample.vectors, seed=3).summary()
    assert {k: v for k, v in coh.items() if k != "baselines"} == pytest.approx({k: v for k, v in want.items() if k != "baselines"})
    assert coh["baselines"]["dense"] == pytest.approx(want["baselines"]["dense"])
    kmeans = coh["baselines"]["kmeans"]
    again = cluster_measures(sample.words, sample.vectors, codes.n_units, seed=3)
    assert kmeans.pop("seconds") >= 0 and again.pop("seconds") >= 0
    assert kmeans == pytest.approx(again) and kmeans["clusters"] == codes.n_units
    assert "kmeans" not in json.loads(runner.invoke(app, ["evaluate", str(codes_path), "--json"]).stdout)["coherence"]["baselines"]

    text = runner.invoke(app, ["evaluate", str(codes_path), "--baselines", "--seed", "3"], env={"COLUMNS": "200", "NO_COLOR": "1"}).stdout
    assert f"k-means ({codes.n_units:,} clusters)" in text
    strict_row = next(line for line in text.splitlines() if "strict purity (all top 10 words; chance" in line)
    cells = [c.strip() for c in strict_row.split("│")[2:5]]
    assert cells == [f"{want['strict_purity']:.3f}", f"{want['baselines']['dense']['strict_purity']:.3f}",
                     f"{again['strict_purity']:.3f}"]
    readable = next(line for line in text.splitlines() if "readable units" in line)
    assert f"{100 * want['readable_units']:.1f}%" in readable and "non-words among the top 10 words" in text


def test_inspect_sorts_by_strict_purity(codes_path, codes):
    rows = json.loads(CliRunner().invoke(app, ["inspect", str(codes_path), "--sort", "strict", "--json"]).stdout)["units"]
    coh = coherence_of_codes(codes)
    strict = [r["strict_purity"] for r in rows]
    assert strict == sorted(coh.units.strict.tolist(), reverse=True)
    assert [r["non_words"] for r in rows] == coh.units.non_words[[r["unit"] for r in rows]].tolist()
    ties = [r["unit"] for r in rows if r["strict_purity"] == strict[0]]
    assert ties == sorted(ties)  # ties by id
    text = CliRunner().invoke(app, ["inspect", str(codes_path), "--sort", "strict", "--limit", "2"],
                              env={"COLUMNS": "200", "NO_COLOR": "1"}).stdout
    assert "strict" in text and f"{strict[0]:.1f}" in text


def test_train_reports_balance_per_epoch_and_in_the_summary(run_dir, codes):
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for line in lines:
        assert 1 <= line["effective_units"] <= codes.n_units and 0 <= line["starved_fraction"] <= 1
    summary = json.loads((run_dir / "summary.json").read_text())
    bal = balance_of_codes(codes)  # the same model over the same words at the same k
    assert summary["effective_units"] == pytest.approx(bal["effective_units"], rel=1e-9)
    assert summary["starved_fraction"] == bal["starved_fraction"]
    assert summary["busiest_rate"] == bal["busiest_rate"]


def test_tradeoff_command_measures_each_k_as_the_library_does(tmp_path, sample):
    from sparsecode.tradeoff import measure_config, sample_of

    out = tmp_path / "tradeoff.html"
    res = CliRunner().invoke(app, ["tradeoff", str(ROOT / "sample_data" / "glove.6B.50d.5k.h5"), "--k", "4,8",
                                   "--words", "2000", "--hidden", "100", "--epochs", "1", "--device", "cpu",
                                   "--out", str(out), "--json", "-q"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert [r["k"] for r in result["rows"]] == [4, 8] and result["words"] == 2000
    want = measure_config(sample_of(sample, 2000), sc.TrainConfig(hidden=100, epochs=1, k=8, device="cpu"))
    got = result["rows"][1]
    for key in ("fvu", "word_similarity", "effective_units", "starved_fraction", "busiest_rate", "purity",
                "strict_purity", "readable_units", "non_words"):
        assert got[key] == pytest.approx(want[key], rel=1e-6), key  # same seed, same model on the CPU
    from sparsecode.clusters import cluster_measures
    from sparsecode.interpret import dense_coherence

    ref, first = result["reference"], sample_of(sample, 2000)
    dense = dense_coherence(first.words, first.vectors)["dense_measures"]
    assert [ref[f"{key}_dense"] for key in ("strict_purity", "readable_units", "non_words")] == pytest.approx(
        [dense["strict_purity"], dense["readable_units"], dense["non_words"]])
    kmeans = cluster_measures(first.words, first.vectors, 100, seed=0)
    assert ref["kmeans"]["clusters"] == 100 and ref["kmeans"]["strict_purity"] == pytest.approx(kmeans["strict_purity"])
    page = out.read_text()
    assert page.count("<svg") == 5 and "purity against k" in page and "strict purity against k" in page
    assert f"100 k-means clusters of the same words: purity {kmeans['purity']:.3f}" in page
    bad = CliRunner().invoke(app, ["tradeoff", str(ROOT / "sample_data" / "glove.6B.50d.5k.h5"), "--k", "4,x"])
    assert bad.exit_code == 1 and "--k must be comma-separated whole numbers" in bad.stderr
    bad = CliRunner().invoke(app, ["tradeoff", str(ROOT / "sample_data" / "glove.6B.50d.5k.h5"), "--words", "-1"])
    assert bad.exit_code == 1 and bad.stderr.strip() == "error: --words must be 0 (all) or more (got -1)"
    bad = CliRunner().invoke(app, ["tradeoff", str(ROOT / "README.md")])
    assert bad.exit_code == 1 and len(bad.stderr.strip().splitlines()) == 1 and "README.md" in bad.stderr


def test_report_shows_purity_and_flags_units(run_dir, codes_path, codes, tmp_path):
    out = tmp_path / "r.html"
    sc.write_report(run_dir, codes_path, out)
    page = out.read_text()
    bal = balance_of_codes(codes)
    assert f"Effective units {bal['effective_units']:.0f} of {codes.n_units:,}" in page
    table = unit_table(codes)
    assert page.count('<span class="flag busy">') == sum(r["use"] == "busy" and r["frequency"] > 0 for r in table)
    first = table[0]
    shown = "—" if first["purity"] is None else f"{first['purity']:.2f}"
    assert f'<td class="num">{shown}</td>' in page.split('id="unit-0"')[1].split("</tr>")[0]


def test_dense_reference_equals_the_codes_comparison(codes, sample):
    from sparsecode.interpret import dense_coherence

    ref = dense_coherence(sample.words, sample.vectors)
    coh = coherence_of_codes(codes, sample.vectors)
    summary = coh.summary()
    assert ref == {"dense": coh.dense, "dense_measures": summary["baselines"]["dense"], "chance": coh.chance,
                   "strict_chance": coh.strict_chance, "coverage": coh.coverage}
    assert set(ref["dense_measures"]) == {"purity", "units_measured", "units_skipped", "strict_purity",
                                          "readable_units", "non_words"}
    assert dense_coherence(["chien", "voiture"], sample.vectors[:2]) is None  # no word WordNet knows
