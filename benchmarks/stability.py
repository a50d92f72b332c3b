"""Stability across seeds and word intrusion, for trained runs and, as the anchor, k-means clusters.

For each pair of run directories (two seeds of the same settings on the same embeddings, each with
the codes.h5 that ``sparsecode encode RUN EMB`` writes there) it prints, side by side:

- ``compare``: the share of units matched above cosine 0.9 / 0.7 / 0.5 and the median, for the
  runs' decoder rows; for the centroids of spherical k-means (as many clusters as units) run with
  the two seeds on the same words (:func:`sparsecode.clusters.spherical_clusters`), the anchor; and
  for as many random directions (two seeds), what the matching finds in noise;
- the automatic intrusion judge (``sparsecode intrusion CODES --judge dense``, and ``--judge EMB``
  with other embeddings when given): its accuracy and Wilson 95% interval on the first run's codes
  and on the k-means clusters of seed 0, beside chance.

Usage (the runs of benchmarks/STABILITY.md):

    sparsecode train glove50k.h5 --out runs/g0 --seed 0 && sparsecode encode runs/g0 glove50k.h5
    sparsecode train glove50k.h5 --out runs/g1 --seed 1 && sparsecode encode runs/g1 glove50k.h5
    python benchmarks/stability.py runs/g0 runs/g1 [RUN_A RUN_B ...] --units 300 [--judge EMB ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from sparsecode.clusters import spherical_clusters
from sparsecode.codes import load_codes
from sparsecode.compare import THRESHOLDS, compare_runs, match_units
from sparsecode.evaluate import find_sources
from sparsecode.interpret import FREQUENT_WORDS
from sparsecode.intrusion import judge_file


def row(name: str, s: dict, seconds: float) -> str:
    shares = " | ".join(f"{100 * s[f'above_{t}']:.1f}%" for t in THRESHOLDS)
    return f"| {name} | {s['units_a']:,} / {s['units_b']:,} | {shares} | {s['median']:.3f} | {seconds:.1f} |"


def pair(run_a: Path, run_b: Path, units: int, judges: list[str]) -> list[str]:
    t = time.perf_counter()
    runs = compare_runs(run_a, run_b)
    t_runs = time.perf_counter() - t
    codes = load_codes(run_a / "codes.h5")
    vectors = find_sources(codes).vectors[:FREQUENT_WORDS]
    centroids = [spherical_clusters(vectors, codes.n_units, seed)[0] for seed in (0, 1)]
    t = time.perf_counter()
    kmeans = match_units(*centroids).summary()
    t_kmeans = time.perf_counter() - t
    noise = [np.random.default_rng(seed).standard_normal(centroids[0].shape) for seed in (0, 1)]
    t = time.perf_counter()
    random = match_units(*noise).summary()
    t_random = time.perf_counter() - t
    lines = [f"### {run_a} against {run_b} ({len(codes.words):,} words, D={vectors.shape[1]})", "",
             "| units of | H (A / B) | > 0.9 | > 0.7 | > 0.5 | median cosine | matching s |", "| --- | --- | --- | --- | --- | --- | --- |",
             row("the runs' decoder rows", runs, t_runs), row("k-means centroids, seeds 0 and 1", kmeans, t_kmeans),
             row("random directions, seeds 0 and 1", random, t_random), ""]
    for judge in ["dense", *(j for j in judges if j != "-")]:
        judged = judge_file(codes, judge, units=units, seed=0)
        lines += [f"Automatic intrusion judge in {judged['judge']} ({units} units drawn, seed 0; chance 0.20):", "",
                  "| tasks of | judged (skipped: a word missing) | intruders found | 95% interval |",
                  "| --- | --- | --- | --- |"]
        for name, key in (("the codes", "codes"), (f"k-means, {judged.get('clusters', 0):,} clusters", "kmeans")):
            r = judged[key]
            found = "—" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
            lines.append(f"| {name} | {r['tasks']} ({r['skipped']}) | {found} | {r['low']:.3f}-{r['high']:.3f} |")
        lines.append("")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", help="run directories, in pairs (each with its codes.h5)")
    ap.add_argument("--units", type=int, default=300, help="intrusion tasks drawn")
    ap.add_argument("--judge", action="append", default=[], help="other embeddings to judge in, one per pair of runs ('-': none)")
    args = ap.parse_args()
    if len(args.runs) % 2 or (args.judge and len(args.judge) != len(args.runs) // 2):
        ap.error("give the runs in pairs, and one --judge per pair or none")
    for i, (a, b) in enumerate(zip(args.runs[::2], args.runs[1::2])):
        print("\n".join(pair(a, b, args.units, args.judge[i : i + 1])), flush=True)


if __name__ == "__main__":
    main()
