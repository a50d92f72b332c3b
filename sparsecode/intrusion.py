"""Word-intrusion tasks (Murphy et al. 2012, Faruqui et al. 2015): can a reader tell a unit's top
words from a word that does not belong?

A task shows a unit's top TOP words plus one intruder, shuffled. The intruder is a word in the bottom
half of this unit's activations (at or below the median of the words that use it) or not using it
at all, and among the top words of another unit, so that it is not an odd word in itself. Units
are drawn with a seed among those that at least ``min_words`` words use. The answer key (task id,
intruder, unit) goes to a separate file; an answers file has the key's columns (``task``, ``word``),
and :func:`score_answers` gives the share of intruders found with a Wilson 95% interval.

The automatic judge (:func:`judge_tasks`) takes, in each task, the word farthest by cosine (the
lowest mean cosine to the other four) in a set of dense vectors as its answer: chance is 1/5.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .codes import Codes
from .errors import SparsecodeError, need

#: A unit's top words shown in a task (plus one intruder).
TOP = 4
#: Units drawn by default, and the fewest words a unit needs to be drawn.
DEFAULT_UNITS = 100
MIN_WORDS = 5
CHANCE = 1 / (TOP + 1)
#: The columns of a tasks file and of a key (an answers file has the key's first two).
TASK_COLUMNS = ("task", *(f"word{i}" for i in range(1, TOP + 2)))
KEY_COLUMNS = ("task", "word", "unit")
#: z for a 95% interval.
Z95 = 1.959963984540054


@dataclass
class Tasks:
    """Word-intrusion tasks: task ``i`` (id ``i + 1``) shows ``words[i]``; ``intruder[i]`` is the answer."""

    units: np.ndarray
    """(T,) the unit of each task."""
    words: list[list[str]]
    """T lists of TOP + 1 words, shuffled."""
    intruder: list[str]

    @property
    def ids(self) -> list[int]:
        return list(range(1, len(self.units) + 1))


def _unit_entries(codes: Codes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every code entry as (row, value) grouped by unit: ``rows``, ``values`` and (H+1,) ``start``."""
    rows = np.repeat(np.arange(len(codes.words)), codes.l0())
    order = np.argsort(codes.indices, kind="stable")
    start = np.searchsorted(codes.indices[order], np.arange(codes.n_units + 1))
    return rows[order], codes.data[order], start


def draw_tasks(codes: Codes, units: int = DEFAULT_UNITS, seed: int = 0, min_words: int = MIN_WORDS) -> Tasks:
    """``units`` tasks from ``codes``: units drawn with ``seed`` among those used by at least
    ``min_words`` words (and holding TOP stored top words); fewer when fewer units qualify or a
    unit has no intruder to draw."""
    need(units >= 1, "units", "{units} must be at least 1 (got {got})", got=units)
    need(min_words >= TOP + 1, "min_words", "{min_words} must be at least {least} (got {got})", least=TOP + 1,
         got=min_words)
    top_len = np.array([len(t) for t in codes.top_words_table])
    eligible = np.flatnonzero((codes.frequency >= min_words) & (top_len >= TOP))
    if not len(eligible):
        raise SparsecodeError(f"{codes.path or 'codes'}: no unit is used by at least {min_words} words; lower "
                              "--min-words")
    index = codes.word_index
    # The pool of intruders: every (unit, word row) of the stored top words.
    pool_units = np.repeat(np.arange(codes.n_units), top_len)
    pool_rows = np.array([index[w] for t in codes.top_words_table for w in t], dtype=np.int64)
    rows, values, start = _unit_entries(codes)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(eligible, min(units, len(eligible)), replace=False)
    out_units, out_words, out_intruder = [], [], []
    for u in chosen:
        top = codes.top_words_table[u][:TOP]
        users, vals = rows[start[u] : start[u + 1]], values[start[u] : start[u + 1]]
        upper = users[vals > np.median(vals)]  # the top half of its activations
        banned = np.concatenate([upper, [index[w] for w in top]])
        cand = np.unique(pool_rows[pool_units != u])
        cand = cand[~np.isin(cand, banned)]
        if not len(cand):
            continue
        intruder = codes.words[int(cand[rng.integers(len(cand))])]
        shown = [*top, intruder]
        out_units.append(int(u))
        out_words.append([shown[i] for i in rng.permutation(TOP + 1)])
        out_intruder.append(intruder)
    return Tasks(np.array(out_units, dtype=np.int64), out_words, out_intruder)


def write_tasks(tasks: Tasks, out: str | os.PathLike, key: str | os.PathLike, force: bool = False) -> None:
    """The tasks file (``task,word1..word5``) and the key (``task,word,unit``), both or neither."""
    from .atomic import atomic_output, check_output

    if Path(out).resolve() == Path(key).resolve():
        raise SparsecodeError(f"{out}: the tasks and the key must go to two files; give --key another name")
    check_output(out, force)
    check_output(key, force)
    with atomic_output(out, force) as tmp_out, atomic_output(key, force) as tmp_key:
        with open(tmp_out, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(TASK_COLUMNS)
            w.writerows([i, *words] for i, words in zip(tasks.ids, tasks.words))
        with open(tmp_key, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(KEY_COLUMNS)
            w.writerows([i, word, int(u)] for i, word, u in zip(tasks.ids, tasks.intruder, tasks.units))


def read_answers(path: str | os.PathLike) -> dict[int, str]:
    """task id -> word from a CSV with the columns ``task`` and ``word`` (others are ignored)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip() for f in reader.fieldnames or ()]
            if "task" not in fields or "word" not in fields:
                raise SparsecodeError(f"{path}: needs the columns 'task' and 'word' in its first line, as the key has "
                                      f"(found {', '.join(fields) or 'none'})")
            out: dict[int, str] = {}
            for n, row in enumerate(reader, 2):
                row = {(k or "").strip(): v for k, v in row.items()}
                task = (row.get("task") or "").strip()
                if not task:
                    continue
                if not task.isdigit():
                    raise SparsecodeError(f"{path}, line {n}: task {task!r} is not a task id (a whole number)")
                if int(task) in out:
                    raise SparsecodeError(f"{path}, line {n}: task {task} is answered twice; keep one answer")
                out[int(task)] = (row.get("word") or "").strip()
            return out
    except OSError as exc:
        raise SparsecodeError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SparsecodeError(f"{path}: not UTF-8 text; save the answers as a UTF-8 CSV") from None


def wilson(found: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``found`` / ``n`` (95% by default); (0, 1) for n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = found / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy(found: int, n: int) -> dict:
    """``found`` of ``n`` as a share with its Wilson 95% interval, beside chance."""
    low, high = wilson(found, n)
    return {"found": found, "tasks": n, "accuracy": found / n if n else None, "low": low, "high": high,
            "chance": CHANCE}


def score_answers(key: str | os.PathLike, answers: str | os.PathLike) -> dict:
    """The share of intruders found in ``answers`` (tasks the key does not have are an error; tasks
    left unanswered are counted apart), with its Wilson 95% interval."""
    truth, given = read_answers(key), read_answers(answers)
    unknown = sorted(set(given) - set(truth))
    if unknown:
        raise SparsecodeError(f"{answers}: task {unknown[0]} is not in the key {key} ({len(unknown)} such); "
                              "answer the tasks the key was written with")
    found = sum(given[t] == truth[t] for t in given)
    return {**accuracy(found, len(given)), "unanswered": len(truth) - len(given)}


def judge_tasks(tasks: Tasks, words: list[str], vectors: np.ndarray) -> dict:
    """The automatic judge's accuracy: in each task, the word with the lowest mean cosine to the
    other four in ``vectors`` (rows of ``words``; a word is looked up as it is, else lower-cased).
    Tasks with a word the vectors lack are skipped and counted."""
    index = {w: i for i, w in enumerate(words)}
    lookup = np.array([[index.get(w, index.get(w.lower(), -1)) for w in t] for t in tasks.words], dtype=np.int64)
    known = (lookup >= 0).all(1) if len(lookup) else np.zeros(0, dtype=bool)
    v = np.asarray(vectors, dtype=np.float64)[lookup[known]]  # (T, 5, D)
    v /= np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
    sims = v @ v.transpose(0, 2, 1)
    mean_to_others = (sims.sum(-1) - np.diagonal(sims, axis1=1, axis2=2)) / TOP
    picked = mean_to_others.argmin(-1)
    shown = np.array(tasks.words, dtype=object)[known] if known.any() else np.zeros((0, TOP + 1), dtype=object)
    truth = np.array(tasks.intruder, dtype=object)[known]
    found = int((shown[np.arange(len(picked)), picked] == truth).sum())
    return {**accuracy(found, int(known.sum())), "skipped": int((~known).sum())}


# -- files -----------------------------------------------------------------------------------------
def check_intrusion_options(out, key, score, judge) -> None:
    """One of the three uses at a time: write tasks (``out`` and ``key``), ``score`` answers, ``judge``."""
    if score is not None and (out is not None or key is not None or judge is not None):
        raise SparsecodeError("--score scores an answers file: use it without --out, --key and --judge")
    if judge is not None and (out is not None or key is not None):
        raise SparsecodeError("--judge answers the tasks itself: use it without --out and --key (the same --seed "
                              "draws the same tasks)")
    if score is None and judge is None and (out is None or key is None):
        raise SparsecodeError("give --out TASKS.csv and --key KEY.csv (the tasks and their answers go to two files), "
                              "or --score KEY.csv to score answers, or --judge EMB")


def intrusion_tasks(codes_file: str | os.PathLike | Codes, out: str | os.PathLike, key: str | os.PathLike, *,
                    units: int = DEFAULT_UNITS, seed: int = 0, min_words: int = MIN_WORDS, force: bool = False) -> dict:
    """Draw tasks from a codes file (or :class:`Codes`) and write them and their key; a summary."""
    from .codes import load_codes

    codes = codes_file if isinstance(codes_file, Codes) else load_codes(codes_file)
    tasks = draw_tasks(codes, units, seed, min_words)
    write_tasks(tasks, out, key, force)
    return {"tasks": len(tasks.units), "out": str(out), "key": str(key), "seed": seed}


def judge_file(codes_file: str | os.PathLike | Codes, judge: str | os.PathLike = "dense", *, units: int = DEFAULT_UNITS,
               seed: int = 0, min_words: int = MIN_WORDS, kmeans: bool = True) -> dict:
    """The automatic judge (:func:`judge_tasks`) on the tasks :func:`draw_tasks` draws from the codes
    (those ``intrusion --out`` writes with the same settings), in the embeddings file ``judge`` or,
    with ``"dense"``, the codes' dense vectors (their run's training file); with ``kmeans``, beside
    it the same judge on the tasks of spherical k-means clusters of the same words, as many clusters
    as units, seeded alike (:func:`sparsecode.clusters.kmeans_codes`), when the dense vectors are there."""
    from .codes import load_codes
    from .evaluate import find_sources

    codes = codes_file if isinstance(codes_file, Codes) else load_codes(codes_file)
    dense = find_sources(codes).vectors  # None, with a warning that says why, when they are not there
    if str(judge) == "dense":
        if dense is None:
            raise SparsecodeError(f"{codes.path or 'codes'}: the dense vectors of its run are not there; give the "
                                  "embeddings with --judge EMB")
        words, vectors, name = codes.words, dense, "the dense vectors"
    else:
        from .convert import load_embeddings

        emb = load_embeddings(judge)
        words, vectors, name = emb.words, emb.vectors, str(judge)
    tasks = draw_tasks(codes, units, seed, min_words)
    out = {"judge": name, "seed": seed, "codes": {**judge_tasks(tasks, words, vectors), "drawn": len(tasks.units)}}
    if kmeans and dense is not None:
        from .clusters import as_many_clusters_as, kmeans_codes

        clusters = kmeans_codes(codes.words, dense, as_many_clusters_as(codes.n_units, len(codes.words)), seed=seed)
        ktasks = draw_tasks(clusters, units, seed, min_words)
        out["clusters"] = clusters.n_units
        out["kmeans"] = {**judge_tasks(ktasks, words, vectors), "drawn": len(ktasks.units)}
    return out
