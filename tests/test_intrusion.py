"""Word intrusion: the tasks exact on hand-made codes, the key and the scoring with its Wilson
interval, the automatic judge, and the round trip through the command on the sample's codes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sparsecode.cli import app
from sparsecode.codes import Codes
from sparsecode.intrusion import (KEY_COLUMNS, TASK_COLUMNS, Tasks, draw_tasks, judge_tasks, score_answers, wilson,
                                  write_tasks)

from .test_cli import one_line_error

WORDS = ["a", "b", "c", "d", "e", "f", "g", "h", "z"]


def hand_made() -> Codes:
    """Unit 0: a 6, g 5.5, b 5, c 4, d 3, e 2, f 1 (median 4: a, g, b above it). Unit 1: g 3, h 2, a 1.
    Unit 0's intruder must come from unit 1's top words (g, h, a), outside unit 0's top half and
    its top four (a, g, b, c): only h. Unit 1 has 3 words, too few for a task."""
    entries = {"a": [(0, 6.0), (1, 1.0)], "b": [(0, 5.0)], "c": [(0, 4.0)], "d": [(0, 3.0)], "e": [(0, 2.0)],
               "f": [(0, 1.0)], "g": [(0, 5.5), (1, 3.0)], "h": [(1, 2.0)], "z": []}
    counts = [len(entries[w]) for w in WORDS]
    indices = np.array([u for w in WORDS for u, _ in entries[w]], dtype=np.int32)
    data = np.array([v for w in WORDS for _, v in entries[w]], dtype=np.float32)
    top = [["a", "g", "b", "c", "d", "e", "f"], ["g", "h", "a"]]
    values = np.zeros((2, 10), dtype=np.float32)
    return Codes(WORDS, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), indices, data, 2, top, values,
                 np.array([7, 3]), {}, "hand.h5")


def test_the_intruder_is_another_units_top_word_outside_this_units_top_half():
    for seed in range(5):
        tasks = draw_tasks(hand_made(), units=10, seed=seed)
        assert tasks.units.tolist() == [0] and tasks.intruder == ["h"]
        assert sorted(tasks.words[0]) == ["a", "b", "c", "g", "h"]
    orders = {tuple(draw_tasks(hand_made(), seed=s).words[0]) for s in range(10)}
    assert len(orders) > 1  # the words are shuffled, by the seed
    assert draw_tasks(hand_made(), seed=3).words == draw_tasks(hand_made(), seed=3).words
    with pytest.raises(Exception, match="no unit is used by at least 8 words"):
        draw_tasks(hand_made(), min_words=8)


def test_tasks_drawn_from_real_codes_keep_the_protocol(codes):
    tasks = draw_tasks(codes, units=40, seed=1)
    assert len(tasks.units) == 40 == len(set(tasks.units.tolist()))
    dense = codes.dense()
    index = codes.word_index
    for u, words, intruder in zip(tasks.units, tasks.words, tasks.intruder):
        top = [w for w in codes.top_words_table[u][:4]]
        assert sorted(words) == sorted([*top, intruder]) and intruder not in top
        column = dense[:, u]
        users = column[column != 0]
        assert column[index[intruder]] <= np.median(users)  # bottom half, or not using the unit
        assert any(intruder in codes.top_words_table[v] for v in range(codes.n_units) if v != u)


def test_wilson_interval_exact_values():
    z2 = 1.959963984540054 ** 2
    assert wilson(10, 10) == pytest.approx((10 / (10 + z2), 1.0))
    assert wilson(0, 10) == pytest.approx((0.0, 1 - 10 / (10 + z2)))
    low, high = wilson(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    assert wilson(0, 0) == (0.0, 1.0)


def test_tasks_key_and_scoring_round_trip(tmp_path):
    tasks = Tasks(np.array([4, 7, 9]), [["p", "q", "r", "s", "x"], ["t", "y", "u", "v", "w"], ["1", "2", "3", "4", "5"]],
                  ["x", "y", "5"])
    out, key = tmp_path / "tasks.csv", tmp_path / "key.csv"
    write_tasks(tasks, out, key)
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0] == list(TASK_COLUMNS) and rows[1] == ["1", "p", "q", "r", "s", "x"] and len(rows) == 4
    assert list(csv.reader(key.read_text().splitlines())) == [list(KEY_COLUMNS), ["1", "x", "4"], ["2", "y", "7"], ["3", "5", "9"]]
    assert score_answers(key, key) == pytest.approx({"found": 3, "tasks": 3, "accuracy": 1.0, "chance": 0.2, "unanswered": 0,
                                                     "low": 3 / (3 + 1.959963984540054 ** 2), "high": 1.0})
    answers = tmp_path / "answers.csv"
    answers.write_text("word,task\nx,1\n u ,2\n")  # any column order, spaces trimmed; task 3 unanswered
    result = score_answers(key, answers)
    assert (result["found"], result["tasks"], result["unanswered"], result["accuracy"]) == (1, 2, 1, 0.5)
    with pytest.raises(Exception, match="already exists"):
        write_tasks(tasks, out, tmp_path / "other.csv")
    assert not (tmp_path / "other.csv").exists()


def test_the_automatic_judge_takes_the_word_farthest_from_the_other_four():
    words = ["a", "b", "c", "d", "e", "far", "mixed"]
    vectors = np.array([[1, 0.1, 0], [1, 0, 0.1], [1, 0.1, 0.1], [1, 0, 0], [1, 0.2, 0], [0, 1, 0], [0, 0.1, 1.0]])
    tasks = Tasks(np.array([0, 1, 2]), [["a", "far", "b", "c", "d"], ["a", "b", "c", "d", "far"],
                                        ["a", "b", "mixed", "d", "unknown"]], ["far", "a", "mixed"])  # skipped
    result = judge_tasks(tasks, words, vectors)
    assert (result["found"], result["tasks"], result["skipped"], result["accuracy"]) == (1, 2, 1, 0.5)
    # A word missing as it is is looked up lower-cased.
    assert judge_tasks(Tasks(np.array([0]), [["a", "b", "c", "d", "Mixed"]], ["Mixed"]), words, vectors)["found"] == 1


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_the_command_round_trip_and_the_judge_on_the_sample(codes_path, tmp_path):
    out, key = tmp_path / "tasks.csv", tmp_path / "key.csv"
    result = run("intrusion", codes_path, "--units", 30, "--out", out, "--key", key)
    assert result.exit_code == 0, result.output
    assert "wrote 30 tasks" in result.stdout and f"--score {key}" in result.stdout
    result = run("intrusion", key, "--score", key)
    assert result.exit_code == 0 and result.stdout.startswith("30 of 30 (100.0%, 95% interval 88.6%-100.0%)")
    answers = tmp_path / "answers.csv"
    truth = list(csv.DictReader(key.read_text().splitlines()))
    shown = {r["task"]: r for r in csv.DictReader(out.read_text().splitlines())}
    with answers.open("w") as fh:  # a reader who always picks the first word shown
        fh.write("task,word\n" + "".join(f"{r['task']},{shown[r['task']]['word1']}\n" for r in truth))
    data = json.loads(run("intrusion", answers, "--score", key, "--json").stdout)
    assert data["found"] == sum(shown[r["task"]]["word1"] == r["word"] for r in truth) and data["tasks"] == 30
    judged = json.loads(run("intrusion", codes_path, "--units", 30, "--judge", "dense", "--json").stdout)
    assert judged["codes"]["drawn"] == judged["codes"]["tasks"] == 30 and judged["kmeans"]["drawn"] == 30
    assert judged["clusters"] == 200 and 0.2 < judged["codes"]["accuracy"] <= 1.0
    text = run("intrusion", codes_path, "--units", 30, "--judge", "dense").stdout
    assert "k-means, 200 clusters" in text and "intruders found" in text


def test_bad_uses_are_one_line_errors(codes_path, tmp_path):
    key = tmp_path / "key.csv"
    key.write_text("task,word,unit\n1,x,0\n2,y,1\n")
    one_line_error(run("intrusion", codes_path, "--out", tmp_path / "t.csv"), "--out TASKS.csv and --key KEY.csv")
    one_line_error(run("intrusion", codes_path, "--score", key, "--out", tmp_path / "t.csv"), "--score")
    one_line_error(run("intrusion", codes_path, "--units", 0, "--out", tmp_path / "t.csv", "--key", tmp_path / "k.csv"),
                   "--units must be at least 1")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,answer\n1,x\n")
    one_line_error(run("intrusion", bad, "--score", key), "needs the columns 'task' and 'word'")
    bad.write_text("task,word\n1,x\n1,y\n")
    one_line_error(run("intrusion", bad, "--score", key), "task 1 is answered twice")
    bad.write_text("task,word\n3,x\n")
    one_line_error(run("intrusion", bad, "--score", key), "task 3 is not in the key")
    one_line_error(run("intrusion", tmp_path / "missing.csv", "--score", key), "missing.csv: cannot be read")
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "k.csv").exists()
