"""Ablation of training settings for healthy codes: dead units, all-zero rows, FVU, word similarity.

    python benchmarks/ablation_health.py EMB.h5 [--epochs 10] [--settings '{"lr": 2e-3}' ...]

Trains one model per setting (each a JSON object of ``TrainConfig`` fields over the defaults, ``{}``
being the defaults themselves), encodes the whole vocabulary with it, and prints a Markdown table:
setting, dead units %, all-zero rows %, FVU, the mean word similarity over WS-353-ALL, SimLex-999,
MEN and RW (Spearman of code-space cosine) next to the dense vectors' own, and training seconds.
The embeddings come from ``sample_data/build_sample.py`` (50k or all 400k GloVe 6B 50d words).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import sparsecode as sc
from sparsecode.evaluate import code_statistics, headline_average, word_similarity

DEFAULT_SETTINGS = ['{}', '{"homeostasis": 0}', '{"k": 15}', '{"k": 15, "homeostasis": 0}']


def code_vectors(model: sc.SparseAutoencoder, vectors: np.ndarray, k: int):
    """rows -> dense (len(rows), H) codes of those words."""

    def of(rows: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            enc = model.encode(torch.from_numpy(vectors[rows]).to(model.W_enc.device), k)
            z = torch.zeros(len(rows), model.n_hidden, device=enc.acts.device).scatter(1, enc.indices, enc.acts)
        return z.cpu().numpy()

    return of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("embeddings")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--settings", nargs="*", default=DEFAULT_SETTINGS)
    args = ap.parse_args()
    emb = sc.load_embeddings(args.embeddings)
    dense = headline_average(word_similarity(emb.words, lambda rows: emb.vectors[rows]))
    print(f"{args.embeddings}: {len(emb):,} words x {emb.dim}; dense word similarity (mean of 4) {dense:.3f}\n")
    print("| setting | dead % | zero rows % | FVU | word sim (dense) | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    for spec in args.settings:
        cfg = sc.TrainConfig(**{"epochs": args.epochs, "device": "cpu", **json.loads(spec)})
        start = time.perf_counter()
        model = sc.train(emb, cfg).model
        seconds = time.perf_counter() - start
        stats = code_statistics(model, torch.from_numpy(emb.vectors), cfg.resolved("encode_k"))
        ws = headline_average(word_similarity(emb.words, code_vectors(model, emb.vectors, cfg.resolved("encode_k"))))
        print(f"| `{spec}` | {100 * stats['dead_fraction']:.1f} | {100 * stats['zero_rows_fraction']:.2f} | "
              f"{stats['fvu']:.4f} | {ws:.3f} ({dense:.3f}) | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
