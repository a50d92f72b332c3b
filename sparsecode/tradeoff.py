"""Fidelity against meaning: train a few settings (by default a few k) on a sample and measure each.

For every setting the model is trained in memory on the sample, every word of the sample is
encoded with the model's encoder (as ``sparsecode encode`` does), and one row is measured:
FVU, word similarity (the average of WS-353, SimLex-999, MEN and RW), balance (effective units,
starved fraction, the busiest unit's rate) and WordNet supersense purity. ``sparsecode tradeoff``
prints the rows and can draw them as an HTML page; ``benchmarks/interpretability.py`` makes the
tables of ``benchmarks/INTERPRETABILITY.md`` with :func:`measure_config`.
"""

from __future__ import annotations

import os
import time
from html import escape
from typing import Callable

import numpy as np
import torch

from .atomic import atomic_output, check_output
from .config import TrainConfig
from .embeddings import Embeddings
from .encode import iter_codes
from .evaluate import DEFAULT_WORDSIM_DIR, headline_average, word_similarity
from .interpret import coherence, unit_balance
from .model import SparseAutoencoder
from .svg import line_chart
from .train import train


def csr_of(model: SparseAutoencoder, vectors: np.ndarray, k: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR ``(indptr, indices, data)`` of every row of ``vectors`` (N, D), coded by the model's encoder."""
    counts, indices, data = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
    for _, batch in iter_codes(model, iter([(0, vectors)]), k):
        counts.append(batch.counts.cpu().numpy())
        indices.append(batch.indices.cpu().numpy())
        data.append(batch.data.cpu().numpy())
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
    return indptr, np.concatenate(indices).astype(np.int32), np.concatenate(data)


def _dense_rows(indptr, indices, data, n_units: int) -> Callable[[np.ndarray], np.ndarray]:
    def rows_of(rows: np.ndarray) -> np.ndarray:
        starts, lens = indptr[rows], indptr[rows + 1] - indptr[rows]
        pos = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))
        out = np.zeros((len(rows), n_units), dtype=np.float32)
        out[np.repeat(np.arange(len(rows)), lens), indices[pos]] = data[pos]
        return out

    return rows_of


@torch.no_grad()
def measure_model(model: SparseAutoencoder, emb: Embeddings, k: int | None, wordsim_dir=DEFAULT_WORDSIM_DIR,
                  seed: int = 0) -> dict:
    """FVU, word similarity, balance and purity of the model's codes of every word of ``emb``."""
    model = model.eval()
    indptr, indices, data = csr_of(model, emb.vectors, k)
    n, h = len(emb.words), model.n_hidden
    x = torch.from_numpy(emb.vectors).to(model.W_dec.device)
    sse = 0.0
    for start in range(0, n, 8192):
        rows = np.arange(start, min(start + 8192, n))
        z = torch.from_numpy(_dense_rows(indptr, indices, data, h)(rows)).to(x.device)
        x_hat = model.denormalise(model.decode_dense_normalised(z)).double()
        sse += float((x[start : start + len(rows)].double() - x_hat).pow(2).sum())
    x64 = emb.vectors.astype(np.float64)
    fvu = sse / float(((x64 - x64.mean(0)) ** 2).sum())
    freq = np.bincount(indices, minlength=h)
    bal = unit_balance(freq, n, np.bincount(indices, weights=np.abs(data), minlength=h))
    coh = coherence(emb.words, indptr, indices, data, h, seed=seed)
    ws = headline_average(word_similarity(emb.words, _dense_rows(indptr, indices, data, h), wordsim_dir))
    summary = coh.summary() if coh is not None else {}
    return {"fvu": fvu, "word_similarity": ws, "effective_units": bal["effective_units"],
            "starved_fraction": bal["starved_fraction"], "busiest_rate": bal["busiest_rate"],
            "dead_fraction": float((freq == 0).mean()), "purity": summary.get("purity"),
            "purity_units": summary.get("units_measured")}


def measure_config(emb: Embeddings, cfg: TrainConfig, wordsim_dir=DEFAULT_WORDSIM_DIR) -> dict:
    """Train ``cfg`` on ``emb`` in memory, then :func:`measure_model` at its encode k, with the
    training seconds."""
    start = time.perf_counter()
    result = train(emb, cfg)
    seconds = time.perf_counter() - start
    return {**measure_model(result.model, emb, cfg.k_encode, wordsim_dir, cfg.seed), "seconds": seconds}


def reference(emb: Embeddings, wordsim_dir=DEFAULT_WORDSIM_DIR, seed: int = 0) -> dict:
    """What the rows are compared with: the dense vectors' word similarity and purity, and chance."""
    empty = np.zeros(len(emb.words) + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
    coh = coherence(emb.words, *empty, 1, vectors=emb.vectors, seed=seed)
    ws = headline_average(word_similarity(emb.words, lambda rows: emb.vectors[rows], wordsim_dir))
    return {"word_similarity": ws, "purity_dense": coh.dense if coh else None,
            "purity_chance": coh.chance if coh else None, "coverage": coh.coverage if coh else None}


def sample_of(emb: Embeddings, words: int) -> Embeddings:
    """The first ``words`` words (the most frequent, in a file in frequency order); all for 0."""
    if not words or words >= len(emb.words):
        return emb
    return Embeddings(list(emb.words[:words]), np.ascontiguousarray(emb.vectors[:words]), emb.path)


def tradeoff(emb: Embeddings, ks: list[int], base: TrainConfig, wordsim_dir=DEFAULT_WORDSIM_DIR,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """:func:`measure_config` for ``base`` at each k of ``ks``: ``{"reference": ..., "rows": [...]}``."""
    rows = []
    for i, k in enumerate(ks):
        if progress is not None:
            progress(i, len(ks))
        cfg = TrainConfig(**{**base.to_dict(), "k": k})
        cfg.validate()
        rows.append({"k": k, **measure_config(emb, cfg, wordsim_dir)})
    return {"words": len(emb.words), "dim": int(emb.vectors.shape[1]), "hidden": base.hidden,
            "reference": reference(emb, wordsim_dir, base.seed), "rows": rows}


def write_tradeoff_html(result: dict, out: str | os.PathLike, title: str, force: bool = False) -> None:
    """One self-contained page: FVU, word similarity and purity against k, and the table."""
    check_output(out, force)
    rows, ref = result["rows"], result["reference"]
    ks = [r["k"] for r in rows]

    def chart(key: str, label: str) -> str:
        values = [r[key] if r[key] is not None else float("nan") for r in rows]
        return line_chart(ks, values, f"{label} against k", "k", label)

    charts = [chart("fvu", "FVU"), chart("word_similarity", "word similarity"), chart("purity", "purity"),
              chart("effective_units", "effective units")]
    head = ("<tr><th>k</th><th>FVU</th><th>word similarity</th><th>purity</th><th>effective units</th>"
            "<th>starved %</th><th>busiest %</th><th>train s</th></tr>")
    body = "".join(
        f"<tr><td>{r['k']}</td><td>{r['fvu']:.4f}</td><td>{_num(r['word_similarity'])}</td><td>{_num(r['purity'])}</td>"
        f"<td>{r['effective_units']:.0f}</td><td>{100 * r['starved_fraction']:.1f}</td>"
        f"<td>{100 * r['busiest_rate']:.1f}</td><td>{r['seconds']:.1f}</td></tr>" for r in rows)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title><style>"
            "body{font:15px/1.45 system-ui,sans-serif;max-width:1000px;margin:auto;padding:0 1em}"
            ".chart{width:460px;max-width:100%}.chart .line{fill:none;stroke:#1f6fb2;stroke-width:2}"
            ".chart .point{fill:#1f6fb2}.chart text{font-size:11px}.chart .axis,.chart .tick{stroke:#444}"
            ".chart .grid{stroke:#e3e7eb}td,th{padding:.2em .7em;text-align:right}</style></head><body>"
            f"<h1>{escape(title)}</h1><p>{result['words']:,} words × {result['dim']} dimensions → {result['hidden']:,} "
            f"units. Dense vectors: word similarity {_num(ref['word_similarity'])}, purity {_num(ref['purity_dense'])}; "
            f"purity by chance {_num(ref['purity_chance'])}.</p>{''.join(charts)}<table>{head}{body}</table></body></html>")
    with atomic_output(out, force=force) as tmp:
        tmp.write_text(page, encoding="utf-8")


def _num(value) -> str:
    return "—" if value is None else f"{value:.3f}"
