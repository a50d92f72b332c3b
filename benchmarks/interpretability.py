"""Fidelity against meaning: train a few settings on one embeddings file and measure each the way
``sparsecode evaluate`` does.

    python benchmarks/interpretability.py glove50k.h5 "" "init=random balance=0" "k=16" --epochs 10

Each setting is a space-separated list of ``TrainConfig`` fields (``name=value``) on top of the
defaults (``--hidden``, ``--epochs``); "" is the defaults alone. For each it trains in memory,
encodes every word with the model's encoder and prints one row (``sparsecode.tradeoff.measure_config``):
strict purity, readable units % and non-word top words % (what a reader sees, as ``sparsecode
evaluate`` counts them), FVU (all words, of the rows the model reconstructs), word similarity (the
average of WS-353, SimLex-999, MEN and RW), effective units, starved %, dead %, the busiest unit's
rate, WordNet supersense purity (units measured) and the training seconds. The header gives the
dense vectors' word similarity and purity, chance and, with ``--clusters H``, the same reader's
figures for H spherical k-means clusters of the same words. ``--json FILE`` also writes the rows.
benchmarks/INTERPRETABILITY.md was made with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import sparsecode as sc  # noqa: E402
from sparsecode.tradeoff import measure_config, reference  # noqa: E402


def parse_setting(text: str) -> dict:
    """``"k=16 init=kmeans"`` -> ``{"k": 16, "init": "kmeans"}`` (numbers as numbers)."""
    names = {f.name for f in dataclasses.fields(sc.TrainConfig)}
    out = {}
    for item in text.split():
        name, value = item.split("=", 1)
        if name not in names:
            raise SystemExit(f"unknown setting {name!r}; settings are TrainConfig's fields")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("embeddings")
    ap.add_argument("settings", nargs="*", default=[""])
    ap.add_argument("--hidden", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--clusters", type=int, help="also measure this many k-means clusters of the same words")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    emb = sc.load_embeddings(args.embeddings)
    ref = reference(emb, clusters=args.clusters)
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    print(f"# {args.embeddings}: {len(emb.words)} words x {emb.vectors.shape[1]}; dense word sim "
          f"{fmt(ref['word_similarity'])}, purity chance {fmt(ref['purity_chance'])}, dense dims "
          f"{fmt(ref['purity_dense'])}; hidden {args.hidden}, {args.epochs} epochs", flush=True)
    if "kmeans" in ref:
        km = ref["kmeans"]
        print(f"# {args.clusters} k-means clusters: strict purity {fmt(km.get('strict_purity'))}, readable "
              f"{pct(km.get('readable_units'))}%, non-words {pct(km.get('non_words'))}%, purity {fmt(km.get('purity'))}",
              flush=True)
    print("| setting | strict purity | readable % | non-words % | FVU | word sim | effective units | starved % | dead % | "
          "busiest % | purity (units) | train s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    rows = []
    for text in args.settings:
        setting = parse_setting(text)
        cfg = sc.TrainConfig(**{"hidden": args.hidden, "epochs": args.epochs, **setting})
        cfg.validate()
        row = {"setting": text or "(defaults)", **measure_config(emb, cfg)}
        rows.append(row)
        print(f"| {row['setting']} | {fmt(row['strict_purity'])} | {pct(row['readable_units'])} | {pct(row['non_words'])} | "
              f"{row['fvu']:.4f} | {fmt(row['word_similarity'])} | {row['effective_units']:.0f} | "
              f"{100 * row['starved_fraction']:.1f} | {100 * row['dead_fraction']:.1f} | {100 * row['busiest_rate']:.1f} | "
              f"{fmt(row['purity'])} ({row['purity_units']}) | {row['seconds']:.1f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"embeddings": args.embeddings, "reference": ref, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
