"""Fidelity against meaning: train a few settings (by default a few k) on a sample and measure each.

For every setting the model is trained in memory on the sample, every word of the sample is
encoded with the model's encoder (as ``sparsecode encode`` does), and one row is measured:
FVU, word similarity (the average of WS-353, SimLex-999, MEN and RW), balance (effective units,
starved fraction, the busiest unit's rate), WordNet supersense purity, strict purity, readable
units and non-words. The reference row holds the dense vectors' figures and those of H k-means
clusters of the same words. ``sparsecode tradeoff`` prints the rows and can draw them as an HTML page; ``benchmarks/interpretability.py`` makes the
tables of ``benchmarks/INTERPRETABILITY.md`` with :func:`measure_config`.
"""

from __future__ import annotations

import os
import time
from typing import Callable

import numpy as np
import torch

from .atomic import atomic_output
from .clusters import as_many_clusters_as, cluster_measures
from .config import TrainConfig
from .embeddings import EmbeddingFile, Embeddings
from .encoding import encode
from .events import Event
from .evaluate import (DEFAULT_WORDSIM_DIR, balance_of_codes, coherence_of_codes, headline_average,
                       reconstruction_of_codes, word_similarity)
from .html_report import STYLE
from .interpret import FREQUENT_WORDS, dense_coherence
from .model import SparseAutoencoder
from .svg import line_chart
from .terminal import html as shown
from .training import train


@torch.no_grad()
def measure_model(model: SparseAutoencoder, emb: Embeddings, k: int | None, wordsim_dir=DEFAULT_WORDSIM_DIR,
                  seed: int = 0) -> dict:
    """FVU, word similarity, balance, purity, strict purity, readable units and non-words of the
    model's codes of every word of ``emb`` (encoded in memory as ``sparsecode encode`` would, then
    measured as ``evaluate`` does)."""
    codes = encode(model.eval(), emb, k=k, device=str(model.W_dec.device))
    fvu = reconstruction_of_codes(codes, model, emb.vectors)["fvu"]
    bal = balance_of_codes(codes)
    coh = coherence_of_codes(codes, seed=seed)
    ws = headline_average(word_similarity(codes.words, codes.dense, wordsim_dir))
    summary = coh.summary() if coh is not None else {}
    return {"fvu": fvu, "word_similarity": ws, "effective_units": bal["effective_units"],
            "starved_fraction": bal["starved_fraction"], "busiest_rate": bal["busiest_rate"],
            "dead_fraction": float((codes.frequency == 0).mean()), "purity": summary.get("purity"),
            "purity_units": summary.get("units_measured"), **{key: summary.get(key) for key in READER_FIGURES}}


#: What a reader sees, as the rows and the reference carry it (see :mod:`sparsecode.interpret`).
READER_FIGURES = ("strict_purity", "readable_units", "non_words")


def reader_figures(model: SparseAutoencoder, embeddings: str | os.PathLike, k: int | None, seed: int = 0) -> dict | None:
    """Purity and what a reader sees (:data:`READER_FIGURES`) of the model's codes at ``k`` of the
    first FREQUENT_WORDS words of the embeddings file ``embeddings`` (the words the measures rank;
    what ``train`` prints under its summary), with ``words`` (how many); None where WordNet knows
    too few of the words."""
    with EmbeddingFile(embeddings) as f:
        n = min(len(f), FREQUENT_WORDS)
        first = Embeddings(f.words[:n], f.read_rows(np.arange(n)), f.path)
    codes = encode(model.eval(), first, k=k, device=str(model.W_dec.device))
    coh = coherence_of_codes(codes, seed=seed)
    if coh is None:
        return None
    summary = coh.summary()
    return {"words": n, "purity": summary["purity"], **{key: summary[key] for key in READER_FIGURES}}


def measure_config(emb: Embeddings, cfg: TrainConfig, wordsim_dir=DEFAULT_WORDSIM_DIR,
                   events: Callable[[Event], None] | None = None) -> dict:
    """Train ``cfg`` on ``emb`` in memory (reporting to ``events``, see :func:`sparsecode.train`),
    then :func:`measure_model` at its encode k, with the training seconds."""
    start = time.perf_counter()
    result = train(emb, cfg, events=events)
    seconds = time.perf_counter() - start
    return {**measure_model(result.model, emb, cfg.resolved("encode_k"), wordsim_dir, cfg.seed), "seconds": seconds}


def reference(emb: Embeddings, wordsim_dir=DEFAULT_WORDSIM_DIR, seed: int = 0, clusters: int | None = None) -> dict:
    """What the rows are compared with: the dense vectors' word similarity, purity and the
    :data:`READER_FIGURES` (``..._dense``), chance, and with ``clusters`` the purity and reader
    figures of that many k-means clusters of the same words (``kmeans``: their full measures)."""
    coh = dense_coherence(emb.words, emb.vectors, seed) or {}
    ws = headline_average(word_similarity(emb.words, lambda rows: emb.vectors[rows], wordsim_dir))
    dense = coh.get("dense_measures") or {}
    out = {"word_similarity": ws, "purity_dense": coh.get("dense"), "purity_chance": coh.get("chance"),
           "coverage": coh.get("coverage"), **{f"{key}_dense": dense.get(key) for key in READER_FIGURES},
           "strict_purity_chance": coh.get("strict_chance")}
    if clusters is not None and coh:
        out["kmeans"] = cluster_measures(emb.words, emb.vectors, as_many_clusters_as(clusters, len(emb.words)), seed)
    return out


def sample_of(emb: Embeddings, words: int) -> Embeddings:
    """The first ``words`` words (the most frequent, in a file in frequency order); all for 0."""
    if not words or words >= len(emb.words):
        return emb
    return Embeddings(list(emb.words[:words]), np.ascontiguousarray(emb.vectors[:words]), emb.path)


def configs_for(base: TrainConfig, ks: list[int]) -> list[TrainConfig]:
    """``base`` at each k of ``ks``, every one checked before any is trained."""
    configs = [TrainConfig(**{**base.to_dict(), "k": k}) for k in ks]
    for cfg in configs:
        cfg.validate()
    return configs


def tradeoff(emb: Embeddings, ks: list[int], base: TrainConfig, wordsim_dir=DEFAULT_WORDSIM_DIR,
             events: Callable[[int, Event], None] | None = None) -> dict:
    """:func:`measure_config` for ``base`` at each k of ``ks``: ``{"reference": ..., "rows": [...]}``.
    ``events(i, event)`` is called with each event of the i-th model's training."""
    rows = []
    for i, cfg in enumerate(configs_for(base, ks)):
        report = None if events is None else (lambda event, i=i: events(i, event))
        rows.append({"k": cfg.k, **measure_config(emb, cfg, wordsim_dir, report)})
    return {"words": len(emb.words), "dim": int(emb.vectors.shape[1]), "hidden": base.hidden,
            "reference": reference(emb, wordsim_dir, base.seed, clusters=base.hidden), "rows": rows}


def write_tradeoff_html(result: dict, out: str | os.PathLike, title: str, force: bool = False) -> None:
    """One self-contained page in the report's style: FVU, word similarity, purity and effective
    units against k, and the table."""
    rows, ref = result["rows"], result["reference"]

    def chart(key: str, label: str) -> str:
        """``key`` against k on an axis from 0, so that 960 to 970 effective units of 1,000 look as
        small as they are; the ks where it was not measured are left out."""
        points = [(r["k"], r[key]) for r in rows if r[key] is not None]
        if not points:
            return ""
        return line_chart([k for k, _ in points], [v for _, v in points], f"{label} against k", "k", label,
                          y_from_zero=True)

    charts = [chart("fvu", "FVU"), chart("word_similarity", "word similarity"), chart("purity", "purity"),
              chart("strict_purity", "strict purity"),
              chart("effective_units", f"effective units of {result['hidden']:,}")]
    columns = ("k", "FVU", "word similarity", "purity", "strict purity", "readable %", "non-words %", "effective units",
               "starved %", "busiest %", "train s")
    head = "".join(f'<th class="num">{c}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f'<td class="num">{v}</td>' for v in (
        r["k"], f"{r['fvu']:.4f}", _num(r["word_similarity"]), _num(r["purity"]), _num(r["strict_purity"]),
        _pct(r["readable_units"]), _pct(r["non_words"]), f"{r['effective_units']:.0f}",
        f"{100 * r['starved_fraction']:.1f}", f"{100 * r['busiest_rate']:.1f}", f"{r['seconds']:.1f}")) + "</tr>"
        for r in rows)
    km = ref.get("kmeans")
    kmeans = (f" {km['clusters']:,} k-means clusters of the same words: purity {_num(km['purity'])}, strict purity "
              f"{_num(km['strict_purity'])}, readable {_pct(km['readable_units'])} %, non-words {_pct(km['non_words'])} %."
              if km else "")
    page = (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{shown(title)}</title>\n"
            f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>{shown(title)}</h1>\n"
            f"<p class=\"sub\">{result['words']:,} words × {result['dim']} dimensions → {result['hidden']:,} units. Dense "
            f"vectors: word similarity {_num(ref['word_similarity'])}, purity {_num(ref['purity_dense'])}, strict purity "
            f"{_num(ref['strict_purity_dense'])}; purity by chance {_num(ref['purity_chance'])}.{shown(kmeans)}</p>\n"
            f"<div class=\"charts\">{''.join(charts)}</div>\n"
            f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody>\n</table>\n</body>\n</html>\n")
    with atomic_output(out, force=force) as tmp:
        tmp.write_text(page, encoding="utf-8")


def _num(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}"
